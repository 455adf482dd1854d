# oversync-py. `make test` and `make serve` work on a fresh machine with Python 3.11+ and make:
# the targets create the virtualenv and install what they need.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SPEC    := openapi/oversync.yaml
STAMP   := $(VENV)/.installed
# `make serve` installs only what the server runs with (no test tools or code generators)
SERVE_STAMP := $(VENV)/.installed-serve
GENERATED := generated server/oversync_server/api
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all install generate lint-spec generate-server generate-client check-generated \
        lint typecheck docs system-packages test test-fast serve bench bench-bounds conformance soak clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,codegen,dev,embedded-pg,docs,bench]'
	touch $(STAMP)

$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,embedded-pg]'
	touch $(SERVE_STAMP)

install: $(STAMP)

generate: $(STAMP) lint-spec generate-server generate-client

lint-spec: $(STAMP)
	openapi-spec-validator $(SPEC)

# pydantic models, FastAPI routers and one typing.Protocol per tag ([tool.datamodel-codegen]);
# the generated main.py entry point and its README cannot run this server (its services need
# a runtime): dropped, and codegen/server-api-README.md says how to run it instead
generate-server: $(STAMP)
	@datamodel-codegen > $(VENV)/datamodel-codegen.log 2>&1 || { cat $(VENV)/datamodel-codegen.log; exit 1; }
	rm -f server/oversync_server/api/main.py
	cp codegen/server-api-README.md server/oversync_server/api/README.md

# attrs + httpx client, pip-installable on its own; --overwrite drops stale modules
generate-client: $(STAMP)
	openapi-python-client generate --path $(SPEC) --config codegen/openapi-python-client.yaml \
	  --meta setup --output-path generated/oversync_client --overwrite --fail-on-warning \
	  --custom-template-path codegen/client-templates > /dev/null

# regenerate, then fail if anything tracked changed or anything new appeared
check-generated: generate
	@git diff --exit-code --stat -- $(GENERATED) || \
	  { echo 'generated code is stale: run make generate and commit'; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || \
	  { git status --porcelain -- $(GENERATED); echo 'generated code is stale: run make generate and commit'; exit 1; }

LINTED := $(wildcard common server client conformance tests bench examples soak)

lint: $(STAMP)
	ruff check --no-cache $(LINTED) --exclude server/oversync_server/api
	ruff format --no-cache --check $(LINTED) --exclude server/oversync_server/api

typecheck: $(STAMP)
	mypy common/oversync_wire server/oversync_server client/oversqlite client/oversync_client_helpers \
	  conformance/oversync_conformance soak bench

# Debian packages the tests need (.ci/system-packages.txt), installed when missing
system-packages:
	bash .ci/system-packages.sh

test: system-packages check-generated lint typecheck docs
	python -m pytest -q

test-fast: $(STAMP)
	python -m pytest -q -x

# the documentation site in site/; strict: a broken link, anchor or reference fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict --clean

serve: $(SERVE_STAMP)
	oversync-server serve

bench: $(STAMP)
	python -m bench

# what one misbehaving client costs the server: refusal time, RSS growth, other users' latency
bench-bounds: $(STAMP)
	python -m bench.bounds

# the fault-injection soak (docs/soak.md): SEEDS runs of MINUTES each, JOBS at once, every fault on
SEEDS   ?= 5
MINUTES ?= 2
JOBS    ?= 1
soak: $(STAMP)
	python -m soak --seeds $(SEEDS) --minutes $(MINUTES) --jobs $(JOBS)

conformance: $(STAMP)
	python -m pytest -q tests/test_conformance.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
