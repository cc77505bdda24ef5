// Event Grid topics: a system topic on the Storage account (BlobCreated), a system topic on the
// Azure ML workspace (ModelRegistered, DatasetDriftDetected) and a custom topic for the app's own
// drift and health events. Subscriptions are in subscriptions.bicep (they need the functions).
param token string
param location string
param tags object
param storageAccountName string
param amlWorkspaceName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: 'evgt-storage-${token}'
  location: location
  tags: tags
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = if (!empty(amlWorkspaceName)) {
  name: amlWorkspaceName
}

resource amlTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = if (!empty(amlWorkspaceName)) {
  name: 'evgt-aml-${token}'
  location: location
  tags: tags
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

resource customTopic 'Microsoft.EventGrid/topics@2024-06-01-preview' = {
  // checkov:skip=CKV_AZURE_193:the app publishes over the public endpoint with Entra ID (local auth disabled); no VNet in this template
  name: 'evgt-mlops-${token}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    inputSchema: 'EventGridSchema'
    disableLocalAuth: true // publishers use Microsoft Entra ID (EventGrid Data Sender), no keys
    publicNetworkAccess: 'Enabled'
  }
}

output storageTopicName string = storageTopic.name
output amlTopicName string = empty(amlWorkspaceName) ? '' : amlTopic.name
output customTopicName string = customTopic.name
output customTopicEndpoint string = customTopic.properties.endpoint
