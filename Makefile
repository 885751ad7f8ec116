# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
#
# Variable:
#   LISTEN=HOST:PORT  `make run` serves there (passed as --listen). Unset (the
#                     default), trading-server takes TRADING_LISTEN from the
#                     environment, else 127.0.0.1:50051; so both
#                     `TRADING_LISTEN=0.0.0.0:6000 make run` and
#                     `make run LISTEN=0.0.0.0:6000` work (LISTEN wins if both);
#                     an address other than loopback also needs TLS
#                     (TRADING_TLS_CERT, TRADING_TLS_KEY; see server/tls.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PROTO_DIR := protos
PROTO_SRC := $(wildcard $(PROTO_DIR)/trading/v1/*.proto)
PROTO_STAMP := $(PROTO_DIR)/trading/v1/.generated
LISTEN ?=

.PHONY: setup proto run demo test test-fast bench soak lint clean

setup: $(VENV)/.installed $(PROTO_STAMP)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(PROTO_SRC) $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) \
	    --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
	    --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	    --python_out=$(PROTO_DIR) --grpc_python_out=$(PROTO_DIR) \
	    --mypy_out=$(PROTO_DIR) --mypy_grpc_out=$(PROTO_DIR) \
	    $(PROTO_SRC)
	touch $@

run: setup
	$(BIN)/trading-server $(if $(strip $(LISTEN)),--listen $(strip $(LISTEN)))

demo: setup
	$(PY) -m client.demo

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

bench: setup
	$(PY) -m tests.bench

SEEDS ?= 10000
soak: setup
	$(PY) -m tests.sim --seeds $(SEEDS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain engines brokers audit server client tests
	$(BIN)/mypy $(PROTO_DIR)/trading/v1/*.pyi
	cd $(PROTO_DIR) && ../$(BIN)/buf lint
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(PROTO_DIR)/trading/v1/*_pb2*.py* $(PROTO_STAMP) build *.egg-info
