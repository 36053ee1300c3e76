# One command sets up and runs each job. The virtual environment lives in .venv;
# torch is installed first and pinned (a local CPU build), then the package with its test tools.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.v2meow-installed
DEMO_OUT ?= demo_out

.PHONY: setup test lint demo bench corpus clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check v2meow tests bench scripts

# pytest exits 5 when a selection collects no test: that is not a failure.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

demo: setup
	mkdir -p $(DEMO_OUT)
	$(BIN)/v2meow generate "$$($(BIN)/python scripts/sample_video.py)" -o $(DEMO_OUT)/sample_scored.mp4 --seed 0
	@echo "wrote $(DEMO_OUT)/sample_scored.mp4"

bench: setup
	$(BIN)/python -m bench

# The training music of the shipped weights (free for any use, about 40 h; resumable) and the copyleft game music
# the codec is evaluated on. Needs: apt-get install fluidsynth fluid-soundfont-gm musescore-general-soundfont
corpus: setup
	$(BIN)/python scripts/build_corpus.py --eval-music

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
