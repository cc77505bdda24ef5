#!/bin/sh
# azd postdeploy hook (azure.yaml): subscribe the Event Grid-triggered functions to their topics.
#
# Event Grid checks that an AzureFunction destination exists, and the functions exist only once `azd deploy`
# has run, so the subscriptions cannot be part of main.bicep; this deploys infra/core/subscriptions.bicep into
# the resource group main.bicep created, from main.bicep's outputs as azd stored them (`azd env get-values`).
# The deployment has a fixed name and ARM deploys incrementally: running it again changes nothing.
# Nothing secret is printed: values are read by name, and az prints nothing but errors (--output none).
set -eu

fail() {
    echo "postdeploy: $*" >&2
    exit 1
}

command -v azd >/dev/null 2>&1 || fail "azd is not on PATH"
command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not on PATH: install it and run 'az login', then 'azd deploy'"

here=$(cd "$(dirname "$0")" && pwd)
template="$here/../core/subscriptions.bicep"
[ -f "$template" ] || fail "$template is missing"

values=$(azd env get-values) || fail "'azd env get-values' failed: run 'azd provision' first"

# The value of one azd environment entry (KEY="value"), empty when absent.
value() {
    printf '%s\n' "$values" | sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" | head -n 1
}

# A value the deployment cannot do without: stop with its name when it is missing.
require() {
    found=$(value "$1")
    [ -n "$found" ] || fail "$1 is not set in the azd environment (an output of infra/main.bicep): run 'azd provision', then 'azd deploy'"
    printf '%s' "$found"
}

subscription=$(require AZURE_SUBSCRIPTION_ID)
group=$(require AZURE_RESOURCE_GROUP)
app=$(require AZURE_FUNCTION_APP_NAME)
storage_account=$(require AZURE_STORAGE_ACCOUNT)
storage_topic=$(require MLOPS_STORAGE_TOPIC)
custom_topic=$(require MLOPS_CUSTOM_TOPIC)
landing=$(require MLOPS_LANDING_CONTAINER)
dead_letters=$(require MLOPS_DEAD_LETTER_CONTAINER)
aml_topic=$(value MLOPS_AML_TOPIC) # empty with an existing workspace: no Azure ML topic, no Azure ML subscriptions

# A function is listed by the host a little after the package lands; Event Grid refuses a destination it
# cannot find yet, so a failed attempt is retried (5 attempts, 30 s apart; MLOPS_POSTDEPLOY_RETRY_SECONDS
# changes the wait).
pause=${MLOPS_POSTDEPLOY_RETRY_SECONDS:-30}
attempt=1
while :; do
    if az deployment group create \
        --subscription "$subscription" \
        --resource-group "$group" \
        --name mlops-event-subscriptions \
        --template-file "$template" \
        --parameters \
            functionAppName="$app" \
            storageTopicName="$storage_topic" \
            amlTopicName="$aml_topic" \
            customTopicName="$custom_topic" \
            landingContainer="$landing" \
            storageAccountName="$storage_account" \
            deadLetterContainer="$dead_letters" \
        --output none; then
        echo "postdeploy: Event Grid subscriptions to $app are in place"
        exit 0
    fi
    [ "$attempt" -lt 5 ] || fail "the Event Grid subscriptions could not be deployed after $attempt attempts (see az's error above)"
    echo "postdeploy: attempt $attempt failed; the functions may not be listed yet, retrying in $pause s" >&2
    attempt=$((attempt + 1))
    sleep "$pause"
done
