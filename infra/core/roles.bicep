// Least-privilege roles for the Function App's identity. Each says which call needs it.
param principalId string
param storageAccountName string
param customTopicName string
param amlWorkspaceName string
@description('Storage account of the workspace created by this template (its default blob datastore); empty otherwise.')
param amlStorageAccountName string
@description('Application Insights component the app sends telemetry to.')
param appInsightsName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource customTopic 'Microsoft.EventGrid/topics@2024-06-01-preview' existing = {
  name: customTopicName
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = if (!empty(amlWorkspaceName)) {
  name: amlWorkspaceName
}

resource amlStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!empty(amlStorageAccountName)) {
  name: amlStorageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  azureMLDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Host storage, Durable task hub blobs, the deployment package, the landing blobs the activities
// read and the control store they write (Flex deployment needs Owner on the package container).
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageBlobDataOwner)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Durable Functions' Azure Storage provider: control and work-item queues.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageQueueDataContributor)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// Durable Functions' Azure Storage provider: the instances and history tables.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageTableDataContributor)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

// The drift monitor publishes the app's drift events (EventGridPublisherClient with Entra ID).
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(customTopic.id, principalId, roles.eventGridDataSender)
  scope: customTopic
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
  }
}

// AzureMLPlatform: jobs, models, online endpoints and deployments in the workspace.
resource amlScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlWorkspaceName)) {
  name: guid(workspace.id, principalId, roles.azureMLDataScientist)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLDataScientist)
  }
}

// AzureMLPlatform.deployment_metrics: Azure Monitor metrics of the online deployments.
resource monitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlWorkspaceName)) {
  name: guid(workspace.id, principalId, roles.monitoringReader)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringReader)
  }
}

// AzureMLPlatform reads the model data collector's JSONL (modelDataCollector/<endpoint>/<deployment>/model_inputs|model_outputs/...) from the workspace's default blob datastore: read only.
resource amlDatastoreReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlStorageAccountName)) {
  name: guid(amlStorage.id, principalId, roles.storageBlobDataReader)
  scope: amlStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

// The Functions host sends its telemetry with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), which ingestion accepts only from this role.
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
