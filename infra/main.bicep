// The MLOps control plane in one resource group, for `azd up`.
// Layout follows the Azure-Samples azd Functions Flex Consumption templates: this file composes
// infra/app (the Function App) and infra/core (storage, monitoring, Azure ML, Event Grid, roles).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags derive from it.')
param environmentName string

@minLength(1)
@description('Region for every resource.')
param location string

@description('Use an existing Azure ML workspace instead of creating one (leave empty to create).')
param existingAmlWorkspaceName string = ''

@description('Resource group of the existing Azure ML workspace (defaults to this deployment\'s group).')
param existingAmlResourceGroup string = ''

@description('Compute cluster the training jobs run on (create it after deployment, see docs/deploy.md).')
param amlCompute string = 'cpu-cluster'

@description('Azure ML environment of the training jobs.')
param amlEnvironment string = 'azureml:AzureML-sklearn-1.5@latest'

@description('Give the principal running `azd up` the data roles the demo in docs/deploy.md needs (false for a CI principal that only deploys).')
param grantDeployerAccess bool = true

// The principal running `azd up`: azd puts its object id and type into AZURE_PRINCIPAL_ID and
// AZURE_PRINCIPAL_TYPE of main.parameters.json (azure-dev bicep_provider.go, evalParamEnvSubst). That is what
// deployer().objectId returns, which checkov's Bicep parser cannot read (pycep 0.5.1: a parsing error).
@description('Object id of the principal running the deployment; empty: no deployer roles.')
param deployerPrincipalId string = ''

@allowed([ 'User', 'ServicePrincipal', 'Group' ])
@description('What kind of principal that is (a role assignment must say it): azd gives User or ServicePrincipal.')
param deployerPrincipalType string = 'User'

@description('Run Durable Functions on the Durable Task Scheduler instead of the Azure Storage provider (docs/deploy.md says when).')
param useDurableTaskScheduler bool = false

@allowed([ 'Dedicated', 'Consumption' ])
@description('Durable Task Scheduler SKU: Dedicated (1 capacity unit, 2,000 actions/s) or Consumption (pay per action, 500 actions/s).')
param durableTaskSchedulerSku string = 'Dedicated'

@description('Encrypt the app\'s storage account with a customer-managed key in the app\'s Key Vault. Choose before the first provision: queue and table encryption is fixed when the account is created.')
param storageCustomerManagedKey bool = false

@secure()
@description('Key for the plain alert webhook (MLOPS_ALERT_KEY, at least 32 characters); stored in Key Vault. Empty: alerts by app role only.')
param alertKey string = ''

@secure()
@description('Incoming webhook URL for notices (MLOPS_NOTIFY_WEBHOOK_URL); stored in Key Vault. Empty: events on the topic only.')
param notifyWebhookUrl string = ''

@description('Existing Azure OpenAI resource whose deployment judges chat models\' answers (relevance, coherence, groundedness: MLOPS_JUDGE_*); empty: no judge, those metrics are skipped with the reason.')
param judgeOpenAiAccount string = ''

@description('Resource group of that resource (defaults to this deployment\'s group).')
param judgeOpenAiResourceGroup string = ''

@description('The judge: a chat model deployment on that resource (for example a gpt-4o deployment).')
param judgeDeployment string = ''

@description('Azure OpenAI data-plane API version the judge is called with.')
param judgeApiVersion string = '2024-10-21'

@description('Principal id of the Azure ML compute cluster\'s managed identity, which the chat evaluation job signs in as; with judgeOpenAiAccount it gets Cognitive Services OpenAI User on that resource (docs/deploy.md, step 4). Empty: no role assignment.')
param amlComputePrincipalId string = ''

var tags = { 'azd-env-name': environmentName }
var taskHubName = 'MlopsHub' // host.json's hubName, so both backends name the hub alike
var token = toLower(uniqueString(subscription().id, environmentName, location))
var rgName = 'rg-${environmentName}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: 'id-mlops-${token}', location: location, tags: tags }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: { token: token, location: location, tags: tags }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    token: token
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    customerManagedKey: storageCustomerManagedKey
    alertKey: alertKey
    notifyWebhookUrl: notifyWebhookUrl
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stmlops${token}'
    location: location
    tags: tags
    encryptionKeyVaultUri: storageCustomerManagedKey ? keyVault.outputs.uri : ''
    encryptionKeyName: keyVault.outputs.encryptionKeyName
    encryptionIdentityId: keyVault.outputs.encryptionIdentityId
  }
}

module aml 'core/aml.bicep' = if (empty(existingAmlWorkspaceName)) {
  name: 'aml'
  scope: rg
  params: { token: token, location: location, tags: tags, appInsightsId: monitoring.outputs.appInsightsId }
}

module durableTask 'core/durabletask.bicep' = if (useDurableTaskScheduler) {
  name: 'durabletask'
  scope: rg
  params: {
    token: token
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    taskHubName: taskHubName
    sku: durableTaskSchedulerSku
  }
}

// The judge lives in its own resource (often another group); its role assignment goes where it is.
module judge 'core/judge.bicep' = if (!empty(judgeOpenAiAccount)) {
  name: 'judge'
  scope: resourceGroup(empty(judgeOpenAiResourceGroup) ? rgName : judgeOpenAiResourceGroup)
  params: { accountName: judgeOpenAiAccount, jobsPrincipalId: amlComputePrincipalId }
}

var amlWorkspace = empty(existingAmlWorkspaceName) ? 'mlw-${token}' : existingAmlWorkspaceName
var amlGroup = empty(existingAmlResourceGroup) ? rgName : existingAmlResourceGroup

module app 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: 'func-mlops-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainer: storage.outputs.deploymentContainer
    appInsightsConnectionString: monitoring.outputs.connectionString
    topicEndpoint: events.outputs.customTopicEndpoint
    amlSubscriptionId: subscription().subscriptionId
    amlResourceGroup: amlGroup
    amlWorkspace: amlWorkspace
    amlCompute: amlCompute
    amlEnvironment: amlEnvironment
    alertKeyUri: keyVault.outputs.alertKeyUri
    notifyWebhookUri: keyVault.outputs.notifyWebhookUri
    durableTaskSchedulerEndpoint: useDurableTaskScheduler ? durableTask.outputs.endpoint : ''
    durableTaskHubName: useDurableTaskScheduler ? durableTask.outputs.taskHubName : ''
    judgeEndpoint: empty(judgeOpenAiAccount) ? '' : judge.outputs.endpoint
    judgeDeployment: judgeDeployment
    judgeApiVersion: judgeApiVersion
  }
}

module events 'core/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    token: token
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    amlWorkspaceName: empty(existingAmlWorkspaceName) ? aml.outputs.name : ''
    deadLetterContainer: storage.outputs.deadLetterContainer
  }
}

// The Event Grid subscriptions (core/subscriptions.bicep) point at the Event Grid-triggered functions, which
// exist only once the code is deployed: azure.yaml's postdeploy hook (infra/hooks/postdeploy.sh|ps1) deploys
// them after `azd deploy`, from the outputs below, so one `azd up` wires everything.

module roles 'core/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    customTopicName: events.outputs.customTopicName
    amlWorkspaceName: empty(existingAmlWorkspaceName) ? aml.outputs.name : ''
    amlStorageAccountName: empty(existingAmlWorkspaceName) ? aml.outputs.storageAccountName : ''
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module deployerAccess 'core/deployer.bicep' = if (grantDeployerAccess && !empty(deployerPrincipalId)) {
  name: 'deployer-access'
  scope: rg
  params: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    storageAccountName: storage.outputs.name
    landingContainer: storage.outputs.landingContainer
    amlWorkspaceName: empty(existingAmlWorkspaceName) ? aml.outputs.name : ''
    schedulerName: useDurableTaskScheduler ? durableTask.outputs.name : ''
  }
}

output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_URL string = app.outputs.url
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_ML_WORKSPACE string = amlWorkspace
output MLOPS_EVENTGRID_TOPIC_ENDPOINT string = events.outputs.customTopicEndpoint
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
// Read by the postdeploy hook, which deploys core/subscriptions.bicep with them.
output AZURE_RESOURCE_GROUP string = rg.name
output MLOPS_STORAGE_TOPIC string = events.outputs.storageTopicName
output MLOPS_AML_TOPIC string = events.outputs.amlTopicName
output MLOPS_CUSTOM_TOPIC string = events.outputs.customTopicName
output MLOPS_LANDING_CONTAINER string = storage.outputs.landingContainer
output MLOPS_DEAD_LETTER_CONTAINER string = storage.outputs.deadLetterContainer
