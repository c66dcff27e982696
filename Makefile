# One venv, created on demand; every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run test lint format clean fuzz load bench bench-instructions bench-scale profile image

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	CDS_VIEWER=$${CDS_VIEWER:-true} $(BIN)/cds serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -q

fuzz: $(STAMP)
	FUZZ_EXAMPLES=500 $(BIN)/python -m pytest -q tests/test_fuzz.py -m "slow or not slow"

load: $(STAMP)
	LOAD_REQUESTS=5000 $(BIN)/python -m pytest -q tests/test_load.py -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python bench/bench.py

profile: $(STAMP)
	$(BIN)/python bench/callprofile.py typical

bench-instructions: $(STAMP)
	$(BIN)/python bench/instructions.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# The production image, tagged as deploy/kubernetes names it (needs Docker; the tests only read the Dockerfile).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= registry.example.org/cds64580:$(VERSION)
image:
	@command -v docker >/dev/null || { echo "make image needs Docker, which is not installed here"; exit 2; }
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
