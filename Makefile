# Two entry points (see README): `make run` and `make test`. Both install what is missing first.
.PHONY: install run test

install:
	scripts/install.sh

# The main job: stack + bridge + worker + simulators (smoke scenario), live display; Ctrl-C stops.
run: install
	.venv/bin/cityhealth up

test: install
	scripts/test.sh
