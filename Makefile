# The two commands a user needs: `make demo` and `make test`.
# Both run `make setup` first, which installs what is missing and is cheap to re-run.
PY := .venv/bin/python
OUT ?= out/demo

.PHONY: setup demo test unit bench doctor clean

setup:
	@bash scripts/setup.sh

demo: setup
	@mkdir -p $(OUT)
	cp notebooks/02-runqueue-latency.ipynb $(OUT)/
	$(PY) scripts/run_notebooks.py $(OUT)/02-runqueue-latency.ipynb
	$(PY) -m bpfnb.cli report $(OUT)/data/runqlat-heatmap.bpfnb --out $(OUT)/report.html \
		--title "Run-queue latency under CPU contention (case study 02)"

test: setup
	$(PY) -m pytest -ra $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -ra tests/unit

doctor: setup
	.venv/bin/bpfnb doctor

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv out
