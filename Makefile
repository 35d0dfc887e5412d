# Build and test entry points; everything runs inside .venv (make test, make demo, make bench).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
RUN    := WANDB_MODE=disabled MPLBACKEND=Agg $(PY)
PYTEST_ARGS ?= -n auto

.PHONY: venv install test demo bench constraints clean

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(STAMP)

# torch goes first: installed after anything that depends on it, pip pulls the CUDA build.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test]'
	$(PY) -c 'import torch, sys; torch.version.cuda is None or sys.exit("error: torch is a CUDA build: " + torch.__version__)'
	@if $(PIP) list --format=freeze | grep -i '^nvidia-'; then echo "error: nvidia-* packages installed (CUDA); run make clean" >&2; exit 1; fi
	touch $@

test: $(STAMP)
	$(RUN) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(RUN) demo.py

bench: $(STAMP)
	$(RUN) -m bench.engine

# Re-pin constraints.txt from the current .venv (after adding a dependency to pyproject.toml).
constraints: $(STAMP)
	{ echo '# Exact versions of every package in .venv (pip freeze --all, minus pip and the project).'; \
	  echo "# Used as 'pip install -c constraints.txt' on every install; regenerate: make constraints"; \
	  $(PIP) freeze --all --exclude-editable | grep -viE '^(pip|research-exchange)=='; } > constraints.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
