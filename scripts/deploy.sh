#!/usr/bin/env bash
# Deploy ordergrid to Azure with the az CLI: infrastructure, code, then event subscriptions.
#
#   0. preflight, read-only, before anything is created: az version, the logged-in account and
#      subscription, the region offers Flex Consumption, the Bicep CLI (installed with
#      `az bicep install` when missing) and its version, the resource providers the Bicep uses
#      (registered, or the right to register them), the rights to create the group, to deploy and
#      to assign roles. Each failure says what to do.
#   1. az provider register          (only providers not registered yet, then waits for them)
#      az group create               (only if the resource group does not exist yet)
#   2. az deployment group create    infra/main.bicep, deploySubscriptions=false, with what the app
#      carries now (its app settings fingerprint, its package hash tag), so unchanged settings are
#      not written again
#   3. scripts/package.sh            the static musl binary + host.json + function folders, zipped;
#      then the SHA-256 of the package content (entry names, modes and bytes)
#   4. the code, unless the app's tag ordergrid-package-sha256 already equals that hash and the
#      app lists every function: wait until the app identity's role assignments are old enough to
#      have taken effect, then az functionapp deployment source config-zip, retried with backoff
#   5. wait (with backoff) until the Functions host has indexed every function
#   6. az deployment group create    infra/main.bicep, deploySubscriptions=true, recording the
#      package hash in the tag (an AzureFunction event subscription can only be created once its
#      function exists; retried)
#   7. print how to publish a test order with `ordergrid publish` and Entra ID, and the live
#      feed's pages (the order tracker and the operators' board)
#
# A second run with nothing changed changes nothing in Azure that the script controls: names are
# deterministic, the app settings are not written (same fingerprint), the package is not uploaded
# (same content hash), the secret is written only when ORDERGRID_SMTP_PASSWORD is set, providers
# and the group are left alone. ARM still re-applies the unchanged resources of the two
# deployments (see "Running it twice" in infra/README.md for what that means).
#
# Usage:
#   scripts/deploy.sh -g RESOURCE_GROUP -l LOCATION [-p PARAMS.bicepparam] [--dry-run]
#                     [--role-wait SECONDS] [--upload-timeout SECONDS] [--index-timeout SECONDS]
#
#   -g, --resource-group   resource group to deploy into (created if missing)
#   -l, --location         Azure region; must offer Flex Consumption (checked)
#   -p, --params           parameters file (default: infra/main.bicepparam); its `using` must
#                          point at infra/main.bicep
#   --dry-run              print every az command a run would use, including the preflight and
#                          comparison queries, instead of running them; needs no az and no login
#   --role-wait            seconds after the app identity's newest role assignment was created
#                          before the code upload starts (default 600: Azure RBAC changes can take
#                          up to 10 minutes to take effect); 0 uploads at once
#   --upload-timeout       seconds during which a failed code upload is retried with backoff
#                          (30 s doubling to 5 min; default 1800)
#   --index-timeout        seconds to wait for the functions to be indexed (default 900)
#
# Environment:
#   ORDERGRID_SMTP_PASSWORD  the SMTP password, read by main.bicepparam and stored only in Key
#                            Vault; unset keeps the secret that is already there. Never printed.
#
# Needs: az 2.61 or later, logged in (`az login`); the Bicep CLI 0.22.6 or later (az installs it
# when it can download it); rights to register the resource providers the Bicep uses unless they
# are registered (Contributor or Owner on the subscription has them), to create the resource group
# unless it exists, and to create resources and role assignments in it (Owner, or Contributor +
# Role Based Access Control Administrator); python3; what scripts/package.sh needs.
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
ROLE_WAIT=600
UPLOAD_TIMEOUT=1800
INDEX_TIMEOUT=900
INFRA_DEPLOYMENT="ordergrid-infra"
SUBSCRIPTIONS_DEPLOYMENT="ordergrid-subscriptions"
MIN_AZ_VERSION="2.61.0"
# azure-cli refuses a .bicepparam with extra `name=value` parameters on older Bicep
# (_parse_bicepparam_file in azure-cli's resource module: minimum_supported_version_supplemental_param).
MIN_BICEP_VERSION="0.22.6"
PACKAGE_TAG="ordergrid-package-sha256"
FINGERPRINT_SETTING="ORDERGRID_APP_SETTINGS_FINGERPRINT"
PROVIDER_REGISTRATION_TIMEOUT=600

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
        --role-wait) ROLE_WAIT="${2:-}"; shift 2 ;;
        --upload-timeout) UPLOAD_TIMEOUT="${2:-}"; shift 2 ;;
        --index-timeout) INDEX_TIMEOUT="${2:-}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ -n "$RESOURCE_GROUP" ]] || { usage >&2; die "missing --resource-group"; }
[[ -n "$LOCATION" ]] || { usage >&2; die "missing --location"; }
[[ "$RESOURCE_GROUP" =~ ^[-._()A-Za-z0-9]{1,90}$ ]] || die "invalid resource group name '$RESOURCE_GROUP'"
[[ "$LOCATION" =~ ^[a-z0-9]+$ ]] || die "invalid location '$LOCATION' (use the short name, e.g. swedencentral)"
for flag in ROLE_WAIT UPLOAD_TIMEOUT INDEX_TIMEOUT; do
    [[ "${!flag}" =~ ^[0-9]+$ ]] \
        || die "--$(tr 'A-Z_' 'a-z-' <<<"$flag") must be a number of seconds, got '${!flag}'"
done
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

# The resource providers the Bicep deploys to, read from its resource types. Microsoft.Resources
# and Microsoft.Authorization are registered in every subscription, so they are not checked.
mapfile -t PROVIDERS < <(grep -hoE "^resource [A-Za-z0-9_]+ '[A-Za-z0-9]+\.[A-Za-z0-9]+/" \
    infra/main.bicep infra/modules/*.bicep | sed -E "s/^.*'//; s|/$||" \
    | grep -viE '^Microsoft\.(Resources|Authorization)$' | LC_ALL=C sort -uf)
[[ "${#PROVIDERS[@]}" -gt 0 ]] || die "found no resource types in infra/*.bicep"

# --- running (or printing) commands -------------------------------------------------------------
# `run` executes a command, or prints it in --dry-run. `query` runs an az command whose stdout is
# needed later; in --dry-run it prints the command and yields the placeholder given first. Every
# branch that runs a command in a real run is taken in --dry-run (the placeholders lead there), so
# the dry run lists every az command, and scripts/check-az-args can check each with the real az.
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
pause() { # pause SECONDS: nothing to wait for in a dry run
    [[ "$DRY_RUN" -eq 1 ]] || sleep "$1"
}

version_at_least() { # version_at_least HAVE WANT
    python3 - "$1" "$2" <<'PY'
import re, sys
def parse(v):
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", v)
    return tuple(int(x) for x in m.groups()) if m else None
have, want = parse(sys.argv[1]), parse(sys.argv[2])
sys.exit(0 if have is not None and have >= want else 1)
PY
}

# lacking PERMISSIONS_JSON ACTION...: print the actions the caller may not perform, one a line,
# from the answer of the Microsoft.Authorization/permissions API (an action is allowed when one
# entry's actions match it and that entry's notActions do not; * is a wildcard). Deny assignments
# are not part of that answer, so a deny assignment can still fail a deployment later.
lacking() {
    python3 - "$@" <<'PY'
import json, sys
from fnmatch import fnmatchcase
perms = json.loads(sys.argv[1]).get("value", [])
def allowed(action):
    a = action.lower()
    for p in perms:
        if any(fnmatchcase(a, x.lower()) for x in p.get("actions", [])) and \
           not any(fnmatchcase(a, x.lower()) for x in p.get("notActions", [])):
            return True
    return False
for action in sys.argv[2:]:
    if not allowed(action):
        print(action)
PY
}

output_of() { # output_of OUTPUTS_JSON NAME: one output of `az deployment group show --query properties.outputs`
    python3 - "$1" "$2" <<'PY'
import json, sys
outputs = json.loads(sys.argv[1] or "null") or {}
value = (outputs.get(sys.argv[2]) or {}).get("value")
if value is None:
    sys.exit(f"the deployment has no output {sys.argv[2]!r}")
print(json.dumps(value) if isinstance(value, bool) else value)
PY
}

# The SHA-256 of what the package holds, not of the zip's bytes: each entry's name, unix mode,
# size and content, in name order. The zip's timestamps come from the last commit
# (scripts/package.sh, SOURCE_DATE_EPOCH), so a commit that changes no packaged file changes the
# zip's bytes but not this hash.
package_content_sha256() {
    python3 - "$1" <<'PY'
import hashlib, sys, zipfile
total = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in sorted(z.infolist(), key=lambda i: i.filename):
        total.update(f"{info.filename}\0{info.external_attr >> 16:o}\0{info.file_size}\0".encode())
        total.update(hashlib.sha256(z.read(info)).digest())
print(total.hexdigest())
PY
}

# --- 0. preflight (read-only) -----------------------------------------------------------------
if [[ "$DRY_RUN" -eq 1 ]]; then
    log "dry run: printing the commands, running none of them (az is not needed)"
else
    command -v az >/dev/null 2>&1 \
        || die "the Azure CLI (az) is not installed: see https://learn.microsoft.com/cli/azure/install-azure-cli (or: pipx install azure-cli), then run 'az login'"
fi
log "step 0/6: preflight (nothing is created until every check passed)"

az_version="$(query "$MIN_AZ_VERSION" az version --query '"azure-cli"' --output tsv 2>/dev/null)" || az_version=""
version_at_least "$az_version" "$MIN_AZ_VERSION" \
    || die "az ${az_version:-of unknown version} is too old: .bicepparam files with inline overrides need azure-cli $MIN_AZ_VERSION or later (az upgrade)"

account="$(query $'<subscriptionName>\t<subscriptionId>\t<user>' \
    az account show --query '[name, id, user.name]' --output tsv 2>/dev/null | paste -sd'\t' -)" || account=""
IFS=$'\t' read -r SUBSCRIPTION_NAME SUBSCRIPTION_ID SIGNED_IN_AS <<<"$account" || true
[[ -n "${SUBSCRIPTION_ID:-}" ]] \
    || die "az is not logged in: run 'az login' (and 'az account set --subscription <id>' to pick the subscription)"
log "az $az_version, signed in as ${SIGNED_IN_AS:-?}, subscription $SUBSCRIPTION_NAME ($SUBSCRIPTION_ID)"

# Flex Consumption exists in some regions only; a region without it fails halfway through step 2.
flex_regions="$(query "$LOCATION" az functionapp list-flexconsumption-locations --query '[].name' --output tsv)" \
    || die "cannot list the regions that offer Flex Consumption (az functionapp list-flexconsumption-locations failed)"
grep -qx "$LOCATION" <<<"$flex_regions" \
    || die "region '$LOCATION' does not offer Flex Consumption to subscription $SUBSCRIPTION_ID; pick one of: $(paste -sd' ' <<<"$flex_regions")"
log "region $LOCATION offers Flex Consumption"

# az compiles the Bicep with the Bicep CLI and downloads it on first use, which fails where the
# download is blocked: install it now, before anything is created, and check its version.
bicep_version="$(query '' az bicep version 2>/dev/null)" || bicep_version=""
if [[ -z "$bicep_version" ]]; then
    log "the Bicep CLI is not installed: installing it (az bicep install)"
    run az bicep install \
        || die "'az bicep install' failed (it downloads the Bicep CLI from downloads.bicep.azure.com). Where downloads are blocked, install the Bicep CLI yourself (https://learn.microsoft.com/azure/azure-resource-manager/bicep/install), put 'bicep' on PATH and run: az config set bicep.use_binary_from_path=true"
    bicep_version="$(query "Bicep CLI version $MIN_BICEP_VERSION" az bicep version)" \
        || die "the Bicep CLI was installed but 'az bicep version' fails"
fi
version_at_least "$bicep_version" "$MIN_BICEP_VERSION" \
    || die "${bicep_version:-the Bicep CLI} is too old: a .bicepparam file with extra parameters needs Bicep $MIN_BICEP_VERSION or later (az bicep upgrade, or upgrade the 'bicep' on PATH)"
log "$(head -n 1 <<<"$bicep_version")"

exists="$(query false az group exists --name "$RESOURCE_GROUP")"

# Resource providers: a fresh subscription has many unregistered, and a deployment to one fails
# with MissingSubscriptionRegistration. Registering needs <namespace>/register/action on the
# subscription (Contributor and Owner have it).
registered="$(query '' az provider list --query "[?registrationState=='Registered'].namespace" --output tsv)" \
    || die "cannot list the resource providers of subscription $SUBSCRIPTION_ID (az provider list failed)"
UNREGISTERED=()
for ns in "${PROVIDERS[@]}"; do
    grep -qixF -- "$ns" <<<"$registered" || UNREGISTERED+=("$ns")
done

# Rights, from what Azure says the signed-in identity may do (Microsoft.Authorization/permissions,
# https://learn.microsoft.com/rest/api/authorization/permissions): at the subscription for the
# group and the providers, at the group (which includes what is inherited) for the deployment.
subscription_actions=()
[[ "$exists" == "true" ]] || subscription_actions+=("Microsoft.Resources/subscriptions/resourceGroups/write")
for ns in "${UNREGISTERED[@]}"; do subscription_actions+=("$ns/register/action"); done
deployment_actions=("Microsoft.Resources/deployments/write" "Microsoft.Authorization/roleAssignments/write")
all_allowed='{"value": [{"actions": ["*"], "notActions": []}]}'
subscription_permissions="$(query "$all_allowed" az rest --method get \
    --url "/subscriptions/$SUBSCRIPTION_ID/providers/Microsoft.Authorization/permissions?api-version=2022-04-01" \
    --output json)" || die "cannot read your permissions on subscription $SUBSCRIPTION_ID (az rest .../providers/Microsoft.Authorization/permissions failed)"
if [[ "$exists" == "true" || "$DRY_RUN" -eq 1 ]]; then
    group_permissions="$(query "$all_allowed" az rest --method get \
        --url "/subscriptions/$SUBSCRIPTION_ID/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.Authorization/permissions?api-version=2022-04-01" \
        --output json)" || die "cannot read your permissions on resource group $RESOURCE_GROUP"
else
    group_permissions="$subscription_permissions" # a new group inherits only from the subscription (and above)
fi
mapfile -t missing_subscription < <(lacking "$subscription_permissions" "${subscription_actions[@]}")
mapfile -t missing_deployment < <(lacking "$group_permissions" "${deployment_actions[@]}")
problems=()
if printf '%s\n' "${missing_subscription[@]}" | grep -qx "Microsoft.Resources/subscriptions/resourceGroups/write"; then
    problems+=("resource group $RESOURCE_GROUP does not exist and you may not create resource groups in subscription $SUBSCRIPTION_ID: have it created (az group create --name $RESOURCE_GROUP --location $LOCATION) by someone who may, and get Owner (or Contributor + Role Based Access Control Administrator) on it")
fi
cannot_register=()
for action in "${missing_subscription[@]}"; do
    [[ "$action" == */register/action ]] && cannot_register+=("${action%/register/action}")
done
if [[ "${#cannot_register[@]}" -gt 0 ]]; then
    register_commands="$(printf 'az provider register --namespace %s; ' "${cannot_register[@]}")"
    problems+=("resource providers not registered in subscription $SUBSCRIPTION_ID, and you may not register them (that needs Contributor or Owner on the subscription): ${cannot_register[*]}; ask an administrator to run: ${register_commands%; }")
fi
if [[ "${#missing_deployment[@]}" -gt 0 ]]; then
    problems+=("you lack ${missing_deployment[*]} on resource group $RESOURCE_GROUP: the deployment creates resources and role assignments, which needs Owner, or Contributor + Role Based Access Control Administrator, on the group")
fi
if [[ "${#problems[@]}" -gt 0 ]]; then
    for p in "${problems[@]}"; do log "ERROR: $p"; done
    die "preflight failed: nothing was created"
fi
log "rights checked: ${subscription_actions[*]} ${deployment_actions[*]}"

if grep -qE "^param (emailFrom|smtpHost|smtpUsername) = '.*example\.com" "$PARAMS"; then
    log "WARNING: $PARAMS still has example.com placeholders for the email sender or SMTP server: emails will not be delivered until you set real values"
fi
if [[ -n "$SMTP_PASSWORD" ]]; then
    log "ORDERGRID_SMTP_PASSWORD is set: the Key Vault secret smtp-password gets this value (no new version if it is unchanged)"
else
    log "ORDERGRID_SMTP_PASSWORD is not set: the Key Vault secret smtp-password is left as it is (on a first deployment, set it, or email cannot authenticate)"
fi

# --- 1. resource providers and resource group -------------------------------------------------
log "step 1/6: resource providers and resource group"
if [[ "${#UNREGISTERED[@]}" -gt 0 ]]; then
    for ns in "${UNREGISTERED[@]}"; do
        log "registering resource provider $ns in subscription $SUBSCRIPTION_ID"
        run az provider register --namespace "$ns"
    done
    deadline=$((SECONDS + PROVIDER_REGISTRATION_TIMEOUT))
    while :; do
        registered="$(query "$(printf '%s\n' "${PROVIDERS[@]}")" \
            az provider list --query "[?registrationState=='Registered'].namespace" --output tsv)" || registered=""
        pending=()
        for ns in "${UNREGISTERED[@]}"; do grep -qixF -- "$ns" <<<"$registered" || pending+=("$ns"); done
        [[ "${#pending[@]}" -eq 0 ]] && break
        ((SECONDS < deadline)) \
            || die "after ${PROVIDER_REGISTRATION_TIMEOUT}s these resource providers are still not registered: ${pending[*]} (az provider show --namespace ${pending[0]})"
        log "waiting for the registration of ${pending[*]}; next check in 15 s"
        pause 15
    done
    log "resource providers registered: ${UNREGISTERED[*]}"
else
    log "resource providers already registered: ${PROVIDERS[*]}"
fi
if [[ "$exists" == "true" ]]; then
    log "resource group $RESOURCE_GROUP exists"
else
    log "creating resource group $RESOURCE_GROUP in $LOCATION"
    run az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
fi

# --- what the Function App carries now ------------------------------------------------------------
# The fingerprint of its app settings and the hash of its package, so that step 2 does not write
# unchanged settings again and step 4 does not upload an unchanged package. Nothing found (a first
# deployment, a deleted app) means: write and upload.
deployment_outputs() { # deployment_outputs DEPLOYMENT_NAME PLACEHOLDER_JSON
    query "$2" az deployment group show --resource-group "$RESOURCE_GROUP" --name "$1" \
        --query properties.outputs --output json
}
previous_outputs="$(deployment_outputs "$INFRA_DEPLOYMENT" '{"functionAppName": {"value": "<functionAppName>"}}' 2>/dev/null)" \
    || previous_outputs="{}"
PREVIOUS_APP="$(output_of "$previous_outputs" functionAppName 2>/dev/null)" || PREVIOUS_APP=""
APPLIED_FINGERPRINT=""
DEPLOYED_PACKAGE_SHA256=""
if [[ -n "$PREVIOUS_APP" ]]; then
    DEPLOYED_PACKAGE_SHA256="$(query '' az functionapp show --resource-group "$RESOURCE_GROUP" --name "$PREVIOUS_APP" \
        --query "tags.\"$PACKAGE_TAG\"" --output tsv 2>/dev/null)" || DEPLOYED_PACKAGE_SHA256=""
    APPLIED_FINGERPRINT="$(query '' az functionapp config appsettings list --resource-group "$RESOURCE_GROUP" --name "$PREVIOUS_APP" \
        --query "[?name=='$FINGERPRINT_SETTING'].value | [0]" --output tsv 2>/dev/null)" || APPLIED_FINGERPRINT=""
    log "Function App $PREVIOUS_APP carries: app settings fingerprint ${APPLIED_FINGERPRINT:-(none)}, package sha256 ${DEPLOYED_PACKAGE_SHA256:-(none)}"
fi

# --- 2. infrastructure, without event subscriptions --------------------------------------------
deploy_infra() { # deploy_infra DEPLOYMENT_NAME DEPLOY_SUBSCRIPTIONS APPLIED_FINGERPRINT PACKAGE_SHA256
    run az deployment group create \
        --resource-group "$RESOURCE_GROUP" \
        --name "$1" \
        --template-file "$TEMPLATE" \
        --parameters "$PARAMS" "location=$LOCATION" "deploySubscriptions=$2" \
        "appliedAppSettingsFingerprint=$3" "deployedPackageSha256=$4" \
        --output none
}

log "step 2/6: infrastructure (deploySubscriptions=false)"
ORDERGRID_SMTP_PASSWORD="$SMTP_PASSWORD" deploy_infra "$INFRA_DEPLOYMENT" false "$APPLIED_FINGERPRINT" "$DEPLOYED_PACKAGE_SHA256"
infra_outputs="$(deployment_outputs "$INFRA_DEPLOYMENT" '{"functionAppName": {"value": "<functionAppName>"}, "functionAppPrincipalId": {"value": "<functionAppPrincipalId>"}, "appSettingsFingerprint": {"value": "<appSettingsFingerprint>"}, "appSettingsWritten": {"value": true}}')" \
    || die "cannot read the outputs of deployment $INFRA_DEPLOYMENT"
APP="$(output_of "$infra_outputs" functionAppName)" || die "the deployment returned no functionAppName output"
APP_PRINCIPAL_ID="$(output_of "$infra_outputs" functionAppPrincipalId)" || die "the deployment returned no functionAppPrincipalId output"
SETTINGS_FINGERPRINT="$(output_of "$infra_outputs" appSettingsFingerprint)" || die "the deployment returned no appSettingsFingerprint output"
settings_written="$(output_of "$infra_outputs" appSettingsWritten)" || settings_written="true"
log "Function App: $APP"
if [[ "$settings_written" == "true" ]]; then
    SETTINGS_STATE="written (fingerprint $SETTINGS_FINGERPRINT)"
    log "app settings written (fingerprint $SETTINGS_FINGERPRINT): the app restarts"
else
    SETTINGS_STATE="unchanged, not written (fingerprint $SETTINGS_FINGERPRINT)"
    log "app settings unchanged (fingerprint $SETTINGS_FINGERPRINT): not written"
fi
# A tag read from another app (the name prefix changed) says nothing about this one.
[[ "$APP" == "$PREVIOUS_APP" ]] || DEPLOYED_PACKAGE_SHA256=""

# --- 3. package ---------------------------------------------------------------------------------
log "step 3/6: package (scripts/package.sh)"
if [[ "$DRY_RUN" -eq 1 ]]; then
    show scripts/package.sh
    ZIP="target/package/ordergrid.zip"
    PACKAGE_SHA256="<sha256 of the package content>"
else
    ZIP="$(scripts/package.sh | tail -n 1)"
    scripts/check-package "$ZIP" >&2
    PACKAGE_SHA256="$(package_content_sha256 "$ZIP")" || die "cannot hash the content of $ZIP"
fi
log "package content sha256: $PACKAGE_SHA256"

# --- 4. code ------------------------------------------------------------------------------------
missing_functions() { # the functions the app does not list (yet), one a line; query placeholder: none listed
    local listed
    listed="$(query '' az functionapp function list --resource-group "$RESOURCE_GROUP" --name "$APP" \
        --query '[].name' --output tsv 2>/dev/null | sed 's|^.*/||')" || listed=""
    for fn in "${FUNCTIONS[@]}"; do
        grep -qx "$fn" <<<"$listed" || printf '%s\n' "$fn"
    done
}

log "step 4/6: code (config-zip to $APP)"
upload=1
PACKAGE_STATE="uploaded (content sha256 $PACKAGE_SHA256)"
if [[ "$DRY_RUN" -eq 1 ]]; then
    log "(dry run) the upload is skipped when the app's tag $PACKAGE_TAG equals the package content hash and the app lists every function:"
    missing_functions >/dev/null
elif [[ -n "$DEPLOYED_PACKAGE_SHA256" && "$DEPLOYED_PACKAGE_SHA256" == "$PACKAGE_SHA256" ]]; then
    mapfile -t not_listed < <(missing_functions)
    if [[ "${#not_listed[@]}" -eq 0 ]]; then
        upload=0
        PACKAGE_STATE="unchanged, not uploaded (content sha256 $PACKAGE_SHA256)"
        log "the package is unchanged (tag $PACKAGE_TAG) and every function is listed: not uploading it again"
    else
        log "the package is unchanged, but the app does not list ${not_listed[*]}: uploading it again"
    fi
fi

if [[ "$upload" -eq 1 ]]; then
    # The app's system identity reads and writes app-package and the host storage through role
    # assignments step 2 may have just created; Azure RBAC changes "can take up to 10 minutes" to
    # take effect (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting,
    # "Role assignment changes are not being detected"). Nothing outside the app can act as its
    # identity to test them, so wait until the newest assignment is --role-wait seconds old.
    created="$(query '' az role assignment list --all --assignee-object-id "$APP_PRINCIPAL_ID" \
        --fill-principal-name false --fill-role-definition-name false \
        --query '[].createdOn' --output tsv)" || created=""
    if [[ -n "$created" ]]; then
        newest="$(python3 -c '
import sys
from datetime import datetime
print(int(max(datetime.fromisoformat(s.strip().replace("Z", "+00:00")).timestamp() for s in sys.stdin if s.strip())))
' <<<"$created")" || die "cannot read the creation times of the app's role assignments: $created"
        remaining=$((newest + ROLE_WAIT - $(date +%s)))
    else
        [[ "$DRY_RUN" -eq 1 ]] || log "could not list the role assignments of the app's identity $APP_PRINCIPAL_ID: waiting the whole --role-wait"
        remaining="$ROLE_WAIT"
    fi
    if ((remaining > 0)); then
        log "waiting ${remaining}s until the app identity's role assignments are ${ROLE_WAIT}s old (Azure RBAC changes can take up to 10 minutes to take effect; --role-wait)"
        pause "$remaining"
    fi

    # config-zip deploys (One Deploy on Flex), then waits for the host to answer /admin/host/status
    # and fails with "the app appears to be unhealthy" when it does not within about 90 s
    # (check_flex_app_after_deployment in azure-cli's appservice module). Then the code is
    # deployed: step 5 waits for the host. Any other failure is retried with backoff.
    if [[ "$DRY_RUN" -eq 1 ]]; then
        show az functionapp deployment source config-zip \
            --resource-group "$RESOURCE_GROUP" --name "$APP" --src "$ZIP" --timeout 900 --output none
        log "(retried with backoff from 30 s to 5 min for up to ${UPLOAD_TIMEOUT}s; a failure after a successful deployment, 'the app appears to be unhealthy', goes on to step 5)"
    else
        errors="$(mktemp)"
        trap 'rm -f "$errors"' EXIT
        deadline=$((SECONDS + UPLOAD_TIMEOUT))
        delay=30
        attempt=1
        while :; do
            if { az functionapp deployment source config-zip \
                --resource-group "$RESOURCE_GROUP" --name "$APP" --src "$ZIP" --timeout 900 --output none \
                2>&1 1>&3 | tee "$errors" >&2; } 3>&1; then
                log "package uploaded"
                break
            fi
            if grep -q "appears to be unhealthy" "$errors"; then
                log "the package is deployed, but the Functions host did not answer its health check yet (it may still be waiting for its storage roles): step 5 waits for it"
                break
            fi
            last_error="$(grep -v '^\s*$' "$errors" | tail -n 1)"
            ((SECONDS + delay < deadline)) \
                || die "config-zip failed $attempt times in ${UPLOAD_TIMEOUT}s (--upload-timeout); last error: $last_error"
            log "config-zip failed (attempt $attempt): $last_error"
            log "retrying in ${delay}s: the app identity's access to its storage may still be propagating (gives up after --upload-timeout ${UPLOAD_TIMEOUT}s)"
            sleep "$delay"
            delay=$((delay * 2 > 300 ? 300 : delay * 2))
            attempt=$((attempt + 1))
        done
    fi
fi

# --- 5. wait for the functions to be indexed ---------------------------------------------------
log "step 5/6: waiting up to ${INDEX_TIMEOUT}s for the Functions host to index: ${FUNCTIONS[*]}"
if [[ "$DRY_RUN" -eq 1 ]]; then
    missing_functions >/dev/null
    log "(repeated with backoff from 15 s to 60 s until every function above is listed)"
else
    deadline=$((SECONDS + INDEX_TIMEOUT))
    delay=15
    while :; do
        mapfile -t not_listed < <(missing_functions)
        [[ "${#not_listed[@]}" -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            die "after ${INDEX_TIMEOUT}s the Function App still does not list: ${not_listed[*]} (check the app's logs in Application Insights; the host must be able to start the handler and reach its storage)"
        fi
        log "the host has not indexed ${not_listed[*]} yet; next check in ${delay}s"
        sleep "$delay"
        delay=$((delay * 2 > 60 ? 60 : delay * 2))
    done
    log "all functions indexed"
fi

# --- 6. event subscriptions -------------------------------------------------------------------
# The SMTP password is not passed again: the secret was written (if at all) in step 2. The app
# settings fingerprint is the one step 2 left on the app, so they are not written a second time;
# the package hash goes into the app's tag now that the package is deployed and indexed.
log "step 6/6: event subscriptions (deploySubscriptions=true)"
attempt=1
until deploy_infra "$SUBSCRIPTIONS_DEPLOYMENT" true "$SETTINGS_FINGERPRINT" "$PACKAGE_SHA256"; do
    # Right after indexing, Event Grid's endpoint validation of a new AzureFunction destination
    # can still fail while the host loads the Event Grid extension; try again a few times.
    ((attempt < 3)) || die "deploying the event subscriptions failed $attempt times"
    log "deploying the event subscriptions failed (attempt $attempt); retrying in 60 s"
    attempt=$((attempt + 1))
    sleep 60
done

final_outputs="$(deployment_outputs "$SUBSCRIPTIONS_DEPLOYMENT" '{"topicEndpoint": {"value": "<topicEndpoint>"}, "topicId": {"value": "<topicId>"}, "storageAccountName": {"value": "<storageAccountName>"}, "functionAppHostName": {"value": "<functionAppHostName>"}, "webPubSubHostName": {"value": "<webPubSubHostName>"}}')" \
    || die "cannot read the outputs of deployment $SUBSCRIPTIONS_DEPLOYMENT"
ENDPOINT="$(output_of "$final_outputs" topicEndpoint)"
TOPIC_ID="$(output_of "$final_outputs" topicId)"
STORAGE="$(output_of "$final_outputs" storageAccountName)"
# The app's default host name is <app>.azurewebsites.net; the output says so for certain (an app
# created with a unique default host name gets another one).
APP_HOST="$(output_of "$final_outputs" functionAppHostName 2>/dev/null)" || APP_HOST="$APP.azurewebsites.net"
WEB_PUBSUB_HOST="$(output_of "$final_outputs" webPubSubHostName 2>/dev/null)" || WEB_PUBSUB_HOST="(see the Web PubSub resource)"

done_line="ordergrid is deployed to resource group $RESOURCE_GROUP:"
[[ "$DRY_RUN" -eq 0 ]] || done_line="(dry run: nothing was deployed; values in <> come from the deployment outputs)"
cat <<EOF

$done_line
  Function App      $APP
  app settings      $SETTINGS_STATE
  code package      $PACKAGE_STATE
  orders topic      $ENDPOINT
  storage account   $STORAGE (containers: orders, email-ledger, dead-letters, app-package)
  live feed         Web PubSub $WEB_PUBSUB_HOST, hub orders (Entra ID only, no anonymous clients)

Publish a test order with Entra ID (the topic accepts no keys unless topicLocalAuthEnabled=true).
Your identity needs the EventGrid Data Sender role on the topic, once:

  az role assignment create --role "EventGrid Data Sender" \\
    --assignee "\$(az ad signed-in-user show --query id -o tsv)" \\
    --scope "$TOPIC_ID"

then (role assignments can take a few minutes to apply):

  ordergrid publish --endpoint "$ENDPOINT" --auth entra \\
    --order-id ord-0001 --customer-id cust-42 --value 19.99 --email you@example.com

Follow it in Application Insights (traces of OrderProcessor, EmailNotifier and OrderStatusFeed);
undeliverable events land in the dead-letters container of $STORAGE.

Watch it live:

  order tracker     https://$APP_HOST/api/web/tracker?orderId=ord-0001
  operators' board  https://$APP_HOST/api/web/board

The board is for the principal names in the parameter operators (ORDERGRID_OPERATORS, default
empty: nobody), matched against the X-MS-CLIENT-PRINCIPAL-NAME header that App Service
Authentication sets; enable App Service Authentication on $APP before naming anyone there.
EOF
