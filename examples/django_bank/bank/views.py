"""A small JSON API over the services; facta's errors become HTTP statuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import facta

from . import services
from .models import Balance

View = Callable[..., JsonResponse]


def json_errors(view: View) -> View:
    """409 for a conflict (a stale version, a taken e-mail), 404 for an unknown account, 400
    for a bad request."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except (facta.ConcurrencyError, IntegrityError) as e:
            return JsonResponse({"detail": str(e)}, status=409)
        except facta.AggregateNotFound as e:
            return JsonResponse({"detail": str(e)}, status=404)
        except (ValueError, KeyError, TypeError) as e:
            return JsonResponse({"detail": f"bad request: {e}"}, status=400)

    return wrapped


@csrf_exempt
@require_POST
@json_errors
def open_account(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    customer = services.open_account(
        str(body["name"]), str(body["email"]), int(body.get("opening_deposit", 0))
    )
    return JsonResponse({"account_id": customer.account_id}, status=201)


@csrf_exempt
@require_POST
@json_errors
def deposit(request: HttpRequest, account_id: str) -> JsonResponse:
    body = json.loads(request.body)
    expected = body.get("expected_version")
    account = services.deposit(
        account_id, int(body["amount"]), None if expected is None else int(expected)
    )
    return JsonResponse({"balance": account.balance, "version": account.version})


@require_GET
def balance(request: HttpRequest, account_id: str) -> JsonResponse:
    found = Balance.objects.filter(account_id=account_id).first()
    if found is None:
        return JsonResponse({"detail": f"no account {account_id!r}"}, status=404)
    return JsonResponse({"owner": found.owner, "balance": found.balance})
