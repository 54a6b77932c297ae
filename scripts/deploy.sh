#!/usr/bin/env bash
# Deploy ordergrid to Azure with the az CLI: infrastructure, code, then event subscriptions.
#
#   1. az group create               (only if the resource group does not exist yet)
#   2. az deployment group create    infra/main.bicep, deploySubscriptions=false
#   3. scripts/package.sh            the static musl binary + host.json + function folders, zipped
#   4. az functionapp deployment source config-zip
#   5. wait until the Functions host has indexed every function (az functionapp function list)
#   6. az deployment group create    infra/main.bicep, deploySubscriptions=true
#      (an AzureFunction event subscription can only be created once its function exists)
#   7. print how to publish a test order with `ordergrid publish` and Entra ID
#
# Idempotent: a second run with the same inputs changes no Azure resource. Every resource and
# role-assignment name is derived deterministically (see infra/tests/test_names.py), app settings
# are declared in full, the Key Vault secret is written only when ORDERGRID_SMTP_PASSWORD is set
# (and only in step 2), and the package is byte-identical for the same sources, so step 4
# re-uploads the same content (Flex restarts the instances; nothing else changes).
#
# Usage:
#   scripts/deploy.sh -g RESOURCE_GROUP -l LOCATION [-p PARAMS.bicepparam] [--dry-run]
#                     [--index-timeout SECONDS]
#
#   -g, --resource-group   resource group to deploy into (created if missing)
#   -l, --location         Azure region; must offer Flex Consumption
#                          (az functionapp list-flexconsumption-locations -o table)
#   -p, --params           parameters file (default: infra/main.bicepparam); its `using` must
#                          point at infra/main.bicep
#   --dry-run              print the commands instead of running them; needs no az and no login
#   --index-timeout        seconds to wait for the functions to be indexed (default 900)
#
# Environment:
#   ORDERGRID_SMTP_PASSWORD  the SMTP password, read by main.bicepparam and stored only in Key
#                            Vault; unset keeps the secret that is already there. Never printed.
#
# Needs: az (2.61 or later, logged in with `az login`; it fetches the Bicep CLI itself on first
# use) with rights to create resources and role assignments in the resource group (Owner, or
# Contributor + Role Based Access Control Administrator); python3; what scripts/package.sh needs.
set -euo pipefail

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { printf 'deploy: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

TEMPLATE="infra/main.bicep"
PARAMS="infra/main.bicepparam"
RESOURCE_GROUP=""
LOCATION=""
DRY_RUN=0
INDEX_TIMEOUT=900
INFRA_DEPLOYMENT="ordergrid-infra"
SUBSCRIPTIONS_DEPLOYMENT="ordergrid-subscriptions"

# Keep the password out of every other process's environment (cargo, zip, the other az calls):
# it is handed to the one deployment that writes the secret (step 2) and to nothing else.
SMTP_PASSWORD="${ORDERGRID_SMTP_PASSWORD:-}"
unset ORDERGRID_SMTP_PASSWORD

while [[ $# -gt 0 ]]; do
    case "$1" in
        -g | --resource-group) RESOURCE_GROUP="${2:-}"; shift 2 ;;
        -l | --location) LOCATION="${2:-}"; shift 2 ;;
        -p | --params) PARAMS="${2:-}"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --index-timeout) INDEX_TIMEOUT="${2:-}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ -n "$RESOURCE_GROUP" ]] || { usage >&2; die "missing --resource-group"; }
[[ -n "$LOCATION" ]] || { usage >&2; die "missing --location"; }
[[ "$RESOURCE_GROUP" =~ ^[-._()A-Za-z0-9]{1,90}$ ]] || die "invalid resource group name '$RESOURCE_GROUP'"
[[ "$LOCATION" =~ ^[a-z0-9]+$ ]] || die "invalid location '$LOCATION' (use the short name, e.g. swedencentral)"
[[ "$INDEX_TIMEOUT" =~ ^[0-9]+$ ]] || die "--index-timeout must be a number of seconds, got '$INDEX_TIMEOUT'"
[[ -f "$TEMPLATE" ]] || die "missing $TEMPLATE"
[[ -f "$PARAMS" ]] || die "parameters file '$PARAMS' not found"
[[ "$PARAMS" == *.bicepparam ]] || die "parameters file '$PARAMS' must be a .bicepparam file"
command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to read infra/subscriptions.json)"

# The functions the package deploys (folders with a function.json) and the ones the event
# subscriptions name: every subscribed function must be deployed, or step 6 cannot succeed.
mapfile -t FUNCTIONS < <(find . -mindepth 2 -maxdepth 2 -name function.json \
    -not -path './target/*' -not -path './.*' -printf '%h\n' | sed 's|^\./||' | LC_ALL=C sort)
[[ "${#FUNCTIONS[@]}" -gt 0 ]] || die "no <Function>/function.json at the repository root"
mapfile -t SUBSCRIBED < <(python3 - infra/subscriptions.json <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
names = {s["destination"]["properties"]["functionName"]
         for t in doc["topics"] for s in t["subscriptions"]
         if s["destination"]["endpointType"] == "AzureFunction"}
print("\n".join(sorted(names)))
PY
)
for fn in "${SUBSCRIBED[@]}"; do
    printf '%s\n' "${FUNCTIONS[@]}" | grep -qx "$fn" \
        || die "infra/subscriptions.json subscribes function '$fn', but there is no $fn/function.json to deploy"
done

# --- running (or printing) commands -------------------------------------------------------------
# `run` executes a command, or prints it in --dry-run. `query` runs an az command whose stdout is
# needed later; in --dry-run it prints the command and yields the placeholder given first.
exec 3>&1 # --dry-run prints every command here, even from inside $( ) captures
show() { { printf '+'; printf ' %q' "$@"; printf '\n'; } >&3; }
run() {
    if [[ "$DRY_RUN" -eq 1 ]]; then show "$@"; return 0; fi
    "$@"
}
query() {
    local placeholder="$1"; shift
    if [[ "$DRY_RUN" -eq 1 ]]; then show "$@"; printf '%s\n' "$placeholder"; return 0; fi
    "$@"
}

# --- 0. preflight -----------------------------------------------------------------------------
if [[ "$DRY_RUN" -eq 1 ]]; then
    log "dry run: printing the commands, running none of them (az is not needed)"
else
    command -v az >/dev/null 2>&1 \
        || die "the Azure CLI (az) is not installed: see https://learn.microsoft.com/cli/azure/install-azure-cli (or: pipx install azure-cli), then run 'az login'"
    account="$(az account show --query '[name, id]' -o tsv 2>/dev/null | paste -sd' ' -)" \
        || die "az is not logged in: run 'az login' (and 'az account set --subscription <id>' to pick the subscription)"
    [[ -n "$account" ]] || die "az is not logged in: run 'az login'"
    log "subscription: $account"
    az_version="$(az version --query '"azure-cli"' -o tsv 2>/dev/null || echo 0)"
    if ! python3 -c 'import sys; v=tuple(int(x) for x in sys.argv[1].split(".")[:2]); sys.exit(v < (2, 61))' "$az_version" 2>/dev/null; then
        die "az $az_version is too old: .bicepparam files with inline overrides need azure-cli 2.61 or later (az upgrade)"
    fi
fi
if grep -qE "^param (emailFrom|smtpHost|smtpUsername) = '.*example\.com" "$PARAMS"; then
    log "WARNING: $PARAMS still has example.com placeholders for the email sender or SMTP server: emails will not be delivered until you set real values"
fi
if [[ -n "$SMTP_PASSWORD" ]]; then
    log "ORDERGRID_SMTP_PASSWORD is set: the Key Vault secret smtp-password gets this value (no new version if it is unchanged)"
else
    log "ORDERGRID_SMTP_PASSWORD is not set: the Key Vault secret smtp-password is left as it is (on a first deployment, set it, or email cannot authenticate)"
fi

# --- 1. resource group ------------------------------------------------------------------------
exists="$(query false az group exists --name "$RESOURCE_GROUP")"
if [[ "$exists" == "true" ]]; then
    log "resource group $RESOURCE_GROUP exists"
else
    log "creating resource group $RESOURCE_GROUP in $LOCATION"
    run az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
fi

# --- 2. infrastructure, without event subscriptions --------------------------------------------
deploy_infra() { # deploy_infra DEPLOYMENT_NAME DEPLOY_SUBSCRIPTIONS
    run az deployment group create \
        --resource-group "$RESOURCE_GROUP" \
        --name "$1" \
        --template-file "$TEMPLATE" \
        --parameters "$PARAMS" "location=$LOCATION" "deploySubscriptions=$2" \
        --output none
}
output() { # output DEPLOYMENT_NAME OUTPUT_NAME
    query "<$2>" az deployment group show --resource-group "$RESOURCE_GROUP" --name "$1" \
        --query "properties.outputs.$2.value" --output tsv
}

log "step 2/6: infrastructure (deploySubscriptions=false)"
ORDERGRID_SMTP_PASSWORD="$SMTP_PASSWORD" deploy_infra "$INFRA_DEPLOYMENT" false
APP="$(output "$INFRA_DEPLOYMENT" functionAppName)"
[[ -n "$APP" ]] || die "the deployment returned no functionAppName output"
log "Function App: $APP"

# --- 3. package ---------------------------------------------------------------------------------
log "step 3/6: package (scripts/package.sh)"
if [[ "$DRY_RUN" -eq 1 ]]; then
    show scripts/package.sh
    ZIP="target/package/ordergrid.zip"
else
    ZIP="$(scripts/package.sh | tail -n 1)"
    scripts/check-package "$ZIP" >&2
fi

# --- 4. code ---------------------------------------------------------------------------------
log "step 4/6: code (config-zip to $APP)"
run az functionapp deployment source config-zip \
    --resource-group "$RESOURCE_GROUP" --name "$APP" --src "$ZIP" --timeout 900 --output none

# --- 5. wait for the functions to be indexed ---------------------------------------------------
log "step 5/6: waiting up to ${INDEX_TIMEOUT}s for functions: ${FUNCTIONS[*]}"
if [[ "$DRY_RUN" -eq 1 ]]; then
    show az functionapp function list --resource-group "$RESOURCE_GROUP" --name "$APP" \
        --query '[].name' --output tsv
    log "(repeated every 15 s until every function above is listed)"
else
    deadline=$((SECONDS + INDEX_TIMEOUT))
    while :; do
        listed="$(az functionapp function list --resource-group "$RESOURCE_GROUP" --name "$APP" \
            --query '[].name' --output tsv 2>/dev/null | sed 's|^.*/||' || true)"
        missing=()
        for fn in "${FUNCTIONS[@]}"; do
            grep -qx "$fn" <<<"$listed" || missing+=("$fn")
        done
        [[ "${#missing[@]}" -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            die "after ${INDEX_TIMEOUT}s the Function App still does not list: ${missing[*]} (check the app's logs in Application Insights; the host must be able to start the handler)"
        fi
        log "not indexed yet: ${missing[*]}; retrying in 15 s"
        sleep 15
    done
    log "all functions indexed"
fi

# --- 6. event subscriptions -------------------------------------------------------------------
# The SMTP password is not passed again: the secret was written (if at all) in step 2.
log "step 6/6: event subscriptions (deploySubscriptions=true)"
attempt=1
until deploy_infra "$SUBSCRIPTIONS_DEPLOYMENT" true; do
    # Right after indexing, Event Grid's endpoint validation of a new AzureFunction destination
    # can still fail while the host loads the Event Grid extension; try again a few times.
    ((attempt < 3)) || die "deploying the event subscriptions failed $attempt times"
    log "deploying the event subscriptions failed (attempt $attempt); retrying in 60 s"
    attempt=$((attempt + 1))
    sleep 60
done

ENDPOINT="$(output "$SUBSCRIPTIONS_DEPLOYMENT" topicEndpoint)"
TOPIC_ID="$(output "$SUBSCRIPTIONS_DEPLOYMENT" topicId)"
STORAGE="$(output "$SUBSCRIPTIONS_DEPLOYMENT" storageAccountName)"

done_line="ordergrid is deployed to resource group $RESOURCE_GROUP:"
[[ "$DRY_RUN" -eq 0 ]] || done_line="(dry run: nothing was deployed; values in <> come from the deployment outputs)"
cat <<EOF

$done_line
  Function App      $APP
  orders topic      $ENDPOINT
  storage account   $STORAGE (containers: orders, email-ledger, dead-letters, app-package)

Publish a test order with Entra ID (the topic accepts no keys unless topicLocalAuthEnabled=true).
Your identity needs the EventGrid Data Sender role on the topic, once:

  az role assignment create --role "EventGrid Data Sender" \\
    --assignee "\$(az ad signed-in-user show --query id -o tsv)" \\
    --scope "$TOPIC_ID"

then (role assignments can take a few minutes to apply):

  ordergrid publish --endpoint "$ENDPOINT" --auth entra \\
    --order-id ord-0001 --customer-id cust-42 --value 19.99 --email you@example.com

Follow it in Application Insights (traces of OrderProcessor and EmailNotifier); undeliverable
events land in the dead-letters container of $STORAGE.
EOF
