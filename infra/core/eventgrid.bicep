// Event Grid topics: a system topic on the Storage account (BlobCreated), a system topic on the
// Azure ML workspace (ModelRegistered, DatasetDriftDetected) and a custom topic for the app's own
// drift and health events. Subscriptions are in subscriptions.bicep (they need the functions).
param token string
param location string
param tags object
param storageAccountName string
param amlWorkspaceName string
@description('The container dead-lettered deliveries go to; each topic\'s identity may write there and nowhere else.')
param deadLetterContainer string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: 'evgt-storage-${token}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' } // writes dead letters with Entra ID (the account has no shared keys)
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
  identity: { type: 'SystemAssigned' }
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
    minimumTlsVersionAllowed: '1.2'
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobs
  name: deadLetterContainer
}

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// least privilege: each topic's identity writes blobs to the dead-letter container only
// the storage topic dead-letters BlobCreated deliveries that ran out of retries
resource storageTopicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, storageTopic.id, storageBlobDataContributor)
  scope: deadLetters
  properties: {
    principalId: storageTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

// the Azure ML topic dead-letters ModelRegistered and DatasetDriftDetected deliveries
resource amlTopicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlWorkspaceName)) {
  name: guid(deadLetters.id, 'evgt-aml-${token}', storageBlobDataContributor)
  scope: deadLetters
  properties: {
    principalId: amlTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

// the custom topic dead-letters the app's own drift events
resource customTopicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, customTopic.id, storageBlobDataContributor)
  scope: deadLetters
  properties: {
    principalId: customTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

output storageTopicName string = storageTopic.name
output amlTopicName string = empty(amlWorkspaceName) ? '' : amlTopic.name
output customTopicName string = customTopic.name
output customTopicEndpoint string = customTopic.properties.endpoint
