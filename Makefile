# Two entry points (see README): `make run` and `make test`. Both install what is missing first.
.PHONY: install run test

install:
	scripts/install.sh

# The main job: stack + bridge + worker + simulators (smoke scenario), live display; Ctrl-C stops.
run: install
	.venv/bin/cityhealth up

test: install
	scripts/install_influxdb2.sh  # InfluxDB 2.x for the v2 sink's live tests (built once, cached)
	scripts/test.sh
