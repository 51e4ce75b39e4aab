#!/usr/bin/env bash
# Start script of the Home Assistant add-on: turns the add-on options (/data/options.json) and
# the Supervisor's MQTT service into CYNC_* environment variables, then runs the bridge.
# bashio-free on purpose: it needs only bash, jq and curl, so it also runs (and is tested) outside
# the Home Assistant base images.
#
# Arguments are passed to cync-bridge (default: serve); `run.sh config` prints the configuration
# the add-on would run with, secrets redacted.
set -euo pipefail

options_file="${CYNC_ADDON_OPTIONS:-/data/options.json}"
supervisor="${CYNC_ADDON_SUPERVISOR:-http://supervisor}"
bridge="${CYNC_BRIDGE_BIN:-cync-bridge}"

log() { printf '[cync-bridge add-on] %s\n' "$*" >&2; }

# option NAME: the option's value, empty when unset or null.
option() { jq -r --arg name "$1" '.[$name] // "" | tostring' "$options_file"; }

# export_option VARIABLE NAME: exports the option's value (assigned first, so a jq failure stops
# the script under `set -e` instead of exporting an empty value).
export_option() {
  local value
  value="$(option "$2")"
  export "$1=$value"
}

if [ ! -r "$options_file" ]; then
  log "cannot read $options_file (not running under the Supervisor?)"
  exit 1
fi

# Fixed for the add-on: persistent state in /data, listeners on all interfaces of the container
# (the Supervisor maps the ports), human-readable logs for the add-on log page.
export CYNC_DATA_DIR=/data
export CYNC_SERVER__LISTEN=0.0.0.0:23779
export CYNC_TELEMETRY__LISTEN=0.0.0.0:9464
export CYNC_TELEMETRY__LOG_FORMAT=human

export_option CYNC_TRANSPORT__MODE transport_mode
export_option CYNC_ROLLOUT__CANARY_PERCENT canary_percent
export_option CYNC_TELEMETRY__LOG_FILTER log_level
export_option CYNC_MQTT__DISCOVERY_PREFIX mqtt_discovery_prefix
export_option CYNC_MQTT__BASE_TOPIC mqtt_base_topic
export_option CYNC_MQTT__NODE_ID mqtt_node_id
export_option CYNC_MQTT__COLOR_TEMP_UNIT color_temp_unit

devices_file="$(option devices_file)"
if [ -n "$devices_file" ]; then
  if [ ! -r "$devices_file" ]; then
    log "devices_file $devices_file is not readable; put it in /share or the add-on's config folder"
    exit 1
  fi
  export CYNC_DEVICES__FILE="$devices_file"
fi

timezone="$(option timezone)"
if [ -n "$timezone" ]; then
  export CYNC_TIMEZONE="$timezone"
elif [ -n "${TZ:-}" ]; then
  # The Supervisor passes Home Assistant's time zone as TZ.
  export CYNC_TIMEZONE="$TZ"
fi

# The broker: the add-on options win; otherwise the Supervisor's MQTT service (the Mosquitto
# add-on), which `services: [mqtt:need]` guarantees.
mqtt_url="$(option mqtt_url)"
if [ -n "$mqtt_url" ]; then
  export CYNC_MQTT__URL="$mqtt_url"
  export_option CYNC_MQTT__USERNAME mqtt_username
  export_option CYNC_MQTT__PASSWORD mqtt_password
  log "using the broker from the add-on options: $mqtt_url"
else
  if [ -z "${SUPERVISOR_TOKEN:-}" ]; then
    log "no mqtt_url option and no SUPERVISOR_TOKEN to ask the Supervisor for the MQTT service"
    exit 1
  fi
  if ! service="$(curl -fsS --max-time 10 \
      -H "Authorization: Bearer ${SUPERVISOR_TOKEN}" "${supervisor}/services/mqtt")"; then
    log "the Supervisor has no MQTT service: install and start the Mosquitto broker add-on"
    exit 1
  fi
  host="$(jq -r '.data.host // empty' <<<"$service")"
  port="$(jq -r '.data.port // empty' <<<"$service")"
  ssl="$(jq -r '.data.ssl // false' <<<"$service")"
  if [ -z "$host" ] || [ -z "$port" ]; then
    log "the Supervisor's MQTT service has no host/port: $(jq -c '.result' <<<"$service")"
    exit 1
  fi
  scheme=mqtt
  [ "$ssl" = "true" ] && scheme=mqtts
  export CYNC_MQTT__URL="${scheme}://${host}:${port}"
  username="$(jq -r '.data.username // ""' <<<"$service")"
  password="$(jq -r '.data.password // ""' <<<"$service")"
  export CYNC_MQTT__USERNAME="$username" CYNC_MQTT__PASSWORD="$password"
  log "using the Supervisor's MQTT service at ${host}:${port}"
fi

if [ -z "$devices_file" ] && [ ! -e "${CYNC_DATA_DIR}/cync_devices.yaml" ]; then
  log "no device list yet: open the Cync panel in Home Assistant's sidebar and import names and rooms from your Cync account"
fi

if [ "$#" -eq 0 ]; then
  set -- serve
fi
exec "$bridge" "$@"
