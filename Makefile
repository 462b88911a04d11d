# Two entry points (see README): `make run` and `make test`. Both install what is missing first.
.PHONY: install run test

install:
	scripts/install.sh

# The main job. `cityhealth up` (stack + bridge + worker + simulators) arrives with the pipeline
# issue; until it exists, run the local stack and, when available, the smoke simulation.
run: install
	@if .venv/bin/cityhealth up --help >/dev/null 2>&1; then \
		.venv/bin/cityhealth up; \
	else \
		.venv/bin/cityhealth stack up && \
		if .venv/bin/cityhealth simulate --help >/dev/null 2>&1; then \
			.venv/bin/cityhealth simulate --scenario smoke; \
		fi; \
	fi

test: install
	scripts/test.sh
