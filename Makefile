# Both targets create the virtual environment they need (.venv) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
DENSE := examples/targets/dense
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(DENSE)/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck clean

demo: $(STAMP)
	$(VENV)/bin/python examples/demo.py

test: typecheck
	$(VENV)/bin/python -m pytest -q

lint: typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy checks the sources under the names they install as (dlhwc.compiler, ...): the
# package-dir mapping is mirrored with symlinks in build/mypy/dlhwc.
typecheck: $(STAMP)
	mkdir -p build/mypy/dlhwc
	for d in compiler dialects backends runtime spec; do ln -sfn ../../../$$d build/mypy/dlhwc/$$d; done
	$(VENV)/bin/mypy

# dlhwc, then the example target (an out-of-tree plugin: examples/targets/dense), built
# with the tools the first install brought (setuptools, wheel), without the network.
$(STAMP): pyproject.toml $(DENSE)/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e $(DENSE)
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
