# azd postdeploy hook (azure.yaml, Windows): subscribe the Event Grid-triggered functions to their topics.
#
# The same steps as postdeploy.sh: Event Grid checks that an AzureFunction destination exists, so
# infra/core/subscriptions.bicep is deployed after `azd deploy`, into the resource group main.bicep created,
# from main.bicep's outputs as azd stored them (`azd env get-values`). The deployment has a fixed name and ARM
# deploys incrementally: running it again changes nothing. Nothing secret is printed: values are read by name,
# and az prints nothing but errors (--output none).
$ErrorActionPreference = 'Stop'

function Fail([string]$message) {
    [Console]::Error.WriteLine("postdeploy: $message")
    exit 1
}

if (-not (Get-Command azd -ErrorAction SilentlyContinue)) { Fail 'azd is not on PATH' }
if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Fail "the Azure CLI (az) is not on PATH: install it and run 'az login', then 'azd deploy'"
}

$template = Join-Path $PSScriptRoot '..' 'core' 'subscriptions.bicep'
if (-not (Test-Path $template)) { Fail "$template is missing" }

$lines = azd env get-values
if ($LASTEXITCODE -ne 0) { Fail "'azd env get-values' failed: run 'azd provision' first" }
$values = @{}
foreach ($line in $lines) {
    if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)="?([^"]*)"?$') { $values[$Matches[1]] = $Matches[2] }
}

# A value the deployment cannot do without: stop with its name when it is missing.
function Require([string]$name) {
    $found = $values[$name]
    if (-not $found) {
        Fail "$name is not set in the azd environment (an output of infra/main.bicep): run 'azd provision', then 'azd deploy'"
    }
    return $found
}

$subscription = Require 'AZURE_SUBSCRIPTION_ID'
$group = Require 'AZURE_RESOURCE_GROUP'
$app = Require 'AZURE_FUNCTION_APP_NAME'
$storageAccount = Require 'AZURE_STORAGE_ACCOUNT'
$storageTopic = Require 'MLOPS_STORAGE_TOPIC'
$customTopic = Require 'MLOPS_CUSTOM_TOPIC'
$landing = Require 'MLOPS_LANDING_CONTAINER'
$deadLetters = Require 'MLOPS_DEAD_LETTER_CONTAINER'
$amlTopic = "$($values['MLOPS_AML_TOPIC'])" # empty with an existing workspace: no Azure ML subscriptions

# A function is listed by the host a little after the package lands; Event Grid refuses a destination it
# cannot find yet, so a failed attempt is retried (5 attempts, 30 s apart; MLOPS_POSTDEPLOY_RETRY_SECONDS
# changes the wait).
$pause = if ($env:MLOPS_POSTDEPLOY_RETRY_SECONDS) { [int]$env:MLOPS_POSTDEPLOY_RETRY_SECONDS } else { 30 }
for ($attempt = 1; ; $attempt++) {
    az deployment group create `
        --subscription $subscription `
        --resource-group $group `
        --name mlops-event-subscriptions `
        --template-file $template `
        --parameters `
            "functionAppName=$app" `
            "storageTopicName=$storageTopic" `
            "amlTopicName=$amlTopic" `
            "customTopicName=$customTopic" `
            "landingContainer=$landing" `
            "storageAccountName=$storageAccount" `
            "deadLetterContainer=$deadLetters" `
        --output none
    if ($LASTEXITCODE -eq 0) {
        Write-Host "postdeploy: Event Grid subscriptions to $app are in place"
        exit 0
    }
    if ($attempt -ge 5) {
        Fail "the Event Grid subscriptions could not be deployed after $attempt attempts (see az's error above)"
    }
    [Console]::Error.WriteLine("postdeploy: attempt $attempt failed; the functions may not be listed yet, retrying in $pause s")
    Start-Sleep -Seconds $pause
}
