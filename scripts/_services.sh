# Sourced by scripts/test.sh and .ci/run: start the brokers the publishing tests use (NATS with
# JetStream, RabbitMQ, Redis) if they are installed but not listening on their loopback ports.
# The tests never stop or reconfigure these shared services; restart tests use private ones.
_listening() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
_wait_for() {
    for _ in $(seq 60); do _listening "$1" && return 0; sleep 0.5; done
    echo "$2 did not start listening on 127.0.0.1:$1" >&2
    return 1
}
if ! _listening 4222 && [[ -x /usr/sbin/nats-server ]]; then
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    _wait_for 4222 NATS
fi
if ! _listening 6379 && command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    _wait_for 6379 Redis
fi
if ! _listening 5672 && command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached
    _wait_for 5672 RabbitMQ
fi
