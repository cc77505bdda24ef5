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

var tags = { 'azd-env-name': environmentName }
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

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: 'stmlops${token}', location: location, tags: tags }
}

module aml 'core/aml.bicep' = if (empty(existingAmlWorkspaceName)) {
  name: 'aml'
  scope: rg
  params: { token: token, location: location, tags: tags, appInsightsId: monitoring.outputs.appInsightsId }
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

@description('Create the Event Grid subscriptions; needs the functions deployed first (azd deploy), see docs/deploy.md.')
param createSubscriptions bool = false

module subscriptions 'core/subscriptions.bicep' = if (createSubscriptions) {
  name: 'subscriptions'
  scope: rg
  params: {
    functionAppName: app.outputs.name
    storageTopicName: events.outputs.storageTopicName
    amlTopicName: events.outputs.amlTopicName
    customTopicName: events.outputs.customTopicName
    landingContainer: storage.outputs.landingContainer
    storageAccountName: storage.outputs.name
    deadLetterContainer: storage.outputs.deadLetterContainer
  }
}

module roles 'core/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    customTopicName: events.outputs.customTopicName
    amlWorkspaceName: empty(existingAmlWorkspaceName) ? aml.outputs.name : ''
  }
}

output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_URL string = app.outputs.url
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_ML_WORKSPACE string = amlWorkspace
output MLOPS_EVENTGRID_TOPIC_ENDPOINT string = events.outputs.customTopicEndpoint
