// Event Grid subscriptions to the app's Event Grid-triggered functions (AzureFunction destination:
// no webhook key to handle). Event Grid checks that the functions exist, so this is deployed after the code,
// by azure.yaml's postdeploy hook (infra/hooks/postdeploy.sh, .ps1) into the resource group main.bicep made.
param functionAppName string
param storageTopicName string
param amlTopicName string
param customTopicName string
param landingContainer string
param storageAccountName string
param deadLetterContainer string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' existing = {
  name: storageTopicName
}

resource customTopic 'Microsoft.EventGrid/topics@2024-06-01-preview' existing = {
  name: customTopicName
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Event Grid retries a delivery with exponential backoff for up to 24 hours or 30 attempts; what still fails
// is written to the dead-letter container by the topic's own identity (no keys), never dropped
// (https://learn.microsoft.com/azure/event-grid/manage-event-delivery).
var retry = { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
var deadLetter = {
  identity: { type: 'SystemAssigned' }
  deadLetterDestination: {
    endpointType: 'StorageBlob'
    properties: { resourceId: account.id, blobContainerName: deadLetterContainer }
  }
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: storageTopic
  name: 'landing-blobs'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: { resourceId: '${site.id}/functions/on_blob_created', maxEventsPerBatch: 1 }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/${landingContainer}/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retry
    deadLetterWithResourceIdentity: deadLetter
  }
}

resource amlTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' existing = if (!empty(amlTopicName)) {
  name: amlTopicName
}

resource modelRegistered 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = if (!empty(amlTopicName)) {
  parent: amlTopic
  name: 'model-registered'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: { resourceId: '${site.id}/functions/on_model_registered', maxEventsPerBatch: 1 }
    }
    filter: { includedEventTypes: [ 'Microsoft.MachineLearningServices.ModelRegistered' ] }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retry
    deadLetterWithResourceIdentity: deadLetter
  }
}

resource datasetDrift 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = if (!empty(amlTopicName)) {
  parent: amlTopic
  name: 'dataset-drift'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: { resourceId: '${site.id}/functions/on_drift_event', maxEventsPerBatch: 1 }
    }
    filter: { includedEventTypes: [ 'Microsoft.MachineLearningServices.DatasetDriftDetected' ] }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retry
    deadLetterWithResourceIdentity: deadLetter
  }
}

resource appDrift 'Microsoft.EventGrid/topics/eventSubscriptions@2024-06-01-preview' = {
  parent: customTopic
  name: 'app-drift'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: { resourceId: '${site.id}/functions/on_drift_event', maxEventsPerBatch: 1 }
    }
    filter: { includedEventTypes: [ 'MLOps.Model.DriftDetected', 'MLOps.Model.PerformanceDegraded' ] }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retry
    deadLetterWithResourceIdentity: deadLetter
  }
}
