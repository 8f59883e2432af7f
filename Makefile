# Two commands for a new user: `make run` (set up, build the index if needed, start the app)
# and `make test` (set up, then the whole test suite). Both work offline but for the package registries.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 7860
CORPUS ?=
INDEX  ?=
CORPUS_ARGS := $(if $(CORPUS),--corpus $(CORPUS)) $(if $(INDEX),--index $(INDEX))

.PHONY: setup run test index chromium bench eval clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

index: setup
	$(PY) -m rag build --if-stale $(CORPUS_ARGS)

run: setup
	$(PY) app.py --host $(HOST) --port $(PORT) $(CORPUS_ARGS)

chromium:
	@bash scripts/ensure-chromium

test: setup chromium
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

eval: setup
	$(PY) -m eval.run --dataset eval/dataset.jsonl --out eval/runs/latest

clean:
	rm -rf index/default index/.default.* .pytest_cache
