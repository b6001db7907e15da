# Quick start:  make run   (service on http://localhost:3000, zero configuration)
#               make test  (the whole test suite, against PostgreSQL and Redis on 127.0.0.1; and RabbitMQ
#                           with TEST_RABBITMQ_URL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# A RabbitMQ virtual host of the run's own (made, emptied and used by the tests): set, `make test` runs the
# tests marked `rabbitmq` a second time with RabbitMQ as the broker. .ci/run sets it.
TEST_RABBITMQ_URL ?=

.PHONY: run test lint smoke bench bench-api chaos install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Local first use: SQLite and a file broker in ./var, the console transport, DEBUG on, reachable from
# this machine only.
run: export DEBUG ?= 1
run: export BIND_ADDRESS ?= 127.0.0.1
run: export WORKER_CONCURRENCY ?= 2
run: install
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py demo_session --pretty --port $(PORT)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port $(PORT) web worker pump

test: export TEST_RABBITMQ_URL := $(TEST_RABBITMQ_URL)
test: install-dev
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)
ifneq ($(TEST_RABBITMQ_URL),)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) BROKER_URL=$(TEST_RABBITMQ_URL) \
	  $(BIN)/pytest -m rabbitmq $(PYTEST_ARGS)
else
	@echo "RabbitMQ pass skipped: TEST_RABBITMQ_URL is not set (README, make test)"
endif

# ruff (pyproject.toml): lint and formatting; CI runs it before the tests. `ruff format .` mends the format.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Deploy smoke test (tests/deploy_smoke.py): a fresh venv from requirements.txt alone, DEBUG=0, the Procfile's
# release, web, worker and pump against PostgreSQL and Redis on 127.0.0.1; the seed's example sent and its
# webhook verified. A runtime dependency that only the test tools bring in fails it.
SMOKE_VENV := var/smoke-venv
smoke:
	rm -rf $(SMOKE_VENV)
	$(PYTHON) -m venv $(SMOKE_VENV)
	$(SMOKE_VENV)/bin/pip install --quiet --upgrade pip
	$(SMOKE_VENV)/bin/pip install --quiet -r requirements.txt
	$(SMOKE_VENV)/bin/pip check
	$(SMOKE_VENV)/bin/python tests/deploy_smoke.py

# Dispatch benchmark (bench/README.md): pending capacity, lateness, burst drain vs raw Celery.
# Needs PostgreSQL and Redis on 127.0.0.1; BENCH_ARGS="--pending 20000" for a quicker run.
# The RQ baseline and the charts need requirements-bench.txt (rq, matplotlib); `make test` does not.
$(VENV)/.installed-bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/dispatch.py $(BENCH_ARGS)

# Chaos run: workers SIGKILLed and restarted, the broker flushed, Redis stopped 30 s, PostgreSQL restarted, the
# pump restarted, mid-flight, on its own PostgreSQL and Redis; then checks that nothing was lost or sent twice
# (exit 1 if so) and prints the recovery times. CHAOS_ARGS="--messages 1500" is quicker.
chaos: install-dev
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

# API load benchmark (bench/README.md): create, list, cancel and omnimessage create under concurrent load
# (locust, its own process) against gunicorn; req/s, p50/p99, a page-size and a concurrency sweep, PNG charts.
# Needs PostgreSQL and Redis on 127.0.0.1; about 4 minutes; BENCH_API_ARGS="--quick" for a smoke run.
bench-api: $(VENV)/.installed-bench
	$(BIN)/python bench/api.py $(BENCH_API_ARGS)

clean:
	rm -rf $(VENV) var staticfiles
