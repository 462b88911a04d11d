#!/bin/bash
# Runs once inside the influxdb:2.x container after DOCKER_INFLUXDB_INIT_MODE=setup created
# the org, the admin token and the sensitive bucket (DOCKER_INFLUXDB_INIT_BUCKET).
# The influx CLI is already configured with the admin token (and INFLUX_HOST) here.
# Adds the public bucket and an InfluxQL (DBRP) mapping for both buckets, so InfluxQL
# clients and the Grafana data sources (dashboards/provisioning) query them by name.
set -euo pipefail

org="${DOCKER_INFLUXDB_INIT_ORG}"
public="${CITYHEALTH_PUBLIC_BUCKET:-cityhealth_public}"

influx bucket create --org "${org}" --name "${public}" \
  --retention "${CITYHEALTH_PUBLIC_RETENTION:-0}"

for bucket in "${DOCKER_INFLUXDB_INIT_BUCKET}" "${public}"; do
  id="$(influx bucket list --org "${org}" --name "${bucket}" --hide-headers | cut -f1)"
  influx v1 dbrp create --org "${org}" --db "${bucket}" --rp autogen \
    --bucket-id "${id}" --default
done
