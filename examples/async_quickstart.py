"""The quickstart with asyncio: the same names, prefixed Async, and awaited."""

import asyncio

import msgspec

import facta


@facta.event("TaskAdded")
class TaskAdded(msgspec.Struct, frozen=True):  # msgspec Structs are events too
    title: str


@facta.event("TaskDone")
class TaskDone(msgspec.Struct, frozen=True):
    title: str


class TodoList(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.open_tasks: list[str] = []

    def add(self, title: str) -> None:
        self.record(TaskAdded(title))

    def finish(self, title: str) -> None:
        if title not in self.open_tasks:
            raise ValueError(f"no open task {title!r}")
        self.record(TaskDone(title))

    def apply(self, event: object) -> None:
        match event:
            case TaskAdded(title=title):
                self.open_tasks.append(title)
            case TaskDone(title=title):
                self.open_tasks.remove(title)


async def main() -> None:
    async with facta.connect_async("memory://") as store:
        repo = facta.AsyncRepository(store, TodoList)
        todo = TodoList()
        todo.add("write docs")
        todo.add("ship it")
        await repo.save(todo)
        await repo.update(todo.id, lambda t: t.finish("write docs"))
        loaded = await repo.load(todo.id)
        print("open:", loaded.open_tasks, "version", loaded.version)
        async for event in store.read_all():  # the global log, in order
            print(event.position, event.type, event.data)


asyncio.run(main())
