# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
#
# Variables:
#   TEST_WORKERS=N    `make test` runs the suite on N processes (default 2).
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
# The generated code belongs to the SDK (its own distribution, client/pyproject.toml)
# and imports as trading_sdk.v1; the proto package stays trading.v1 on the wire.
SDK_DIR := client
GEN_DIR := $(SDK_DIR)/trading_sdk/v1
PROTO_STAMP := $(GEN_DIR)/.generated
LISTEN ?=

.PHONY: setup proto sdk run demo test test-fast bench soak lint clean

setup: $(VENV)/.installed $(PROTO_STAMP)

$(VENV)/.installed: pyproject.toml $(SDK_DIR)/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './$(SDK_DIR)[columnar]' -e '.[dev]'
	touch $@

proto: $(PROTO_STAMP)

# protoc names Python modules after the .proto paths (trading/v1/x.proto ->
# trading.v1.x_pb2) and has no option to change that, so the code is generated
# in a scratch folder and its own imports are rewritten to trading_sdk.v1; the
# check after the rewrite fails the build if a newer generator writes an import
# the rewrite does not know.
$(PROTO_STAMP): $(PROTO_SRC) $(VENV)/.installed
	rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) \
	    --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
	    --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	    --python_out=build/proto --grpc_python_out=build/proto \
	    --mypy_out=build/proto --mypy_grpc_out=build/proto \
	    $(PROTO_SRC)
	sed -i -e 's/^from trading\.v1 import /from trading_sdk.v1 import /' \
	    -e "s/'trading\.v1\.\([a-z_]*_pb2\)'/'trading_sdk.v1.\1'/" build/proto/trading/v1/*
	! grep -nE '^(from|import) trading\b|[^/.]trading\.v1\.[a-z_]*_pb2' build/proto/trading/v1/*
	rm -f $(GEN_DIR)/*_pb2*.py*
	mv build/proto/trading/v1/* $(GEN_DIR)/
	touch $@

# The SDK's wheel (its own distribution, client/pyproject.toml), with the generated code.
sdk: setup
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist ./$(SDK_DIR)
	rm -rf $(SDK_DIR)/build $(SDK_DIR)/*.egg-info
	@ls dist/trading_sdk-*.whl

run: setup
	$(BIN)/trading-server $(if $(strip $(LISTEN)),--listen $(strip $(LISTEN)))

demo: setup
	$(PY) -m client.demo

# The suite runs on TEST_WORKERS processes (pytest-xdist), one test file at a time
# each, so a file's module fixtures (the README test's terminal) stay in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: setup
	$(PY) -m tests.bench

SEEDS ?= 10000
soak: setup
	$(PY) -m tests.sim --seeds $(SEEDS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain engines brokers audit server client tests
	$(BIN)/mypy -p trading_sdk  # on its own: the config keeps it out of the crawl of client/
	cd $(PROTO_DIR) && ../$(BIN)/buf lint
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(GEN_DIR)/*_pb2*.py* $(PROTO_STAMP) build dist *.egg-info $(SDK_DIR)/*.egg-info $(SDK_DIR)/build
