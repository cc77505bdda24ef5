// Data-plane roles for whoever runs `azd up` (its object id, as deployer().objectId gives it), so the demo in
// docs/deploy.md works without assigning anything by hand: the storage account allows no shared keys, so even
// its owner needs a data role to upload a blob. Opt out with grantDeployerAccess=false (for example for a CI
// service principal that only deploys).
param principalId string
@allowed([ 'User', 'ServicePrincipal', 'Group' ])
param principalType string
param storageAccountName string
param landingContainer string
@description('Azure ML workspace created by this template; empty when an existing one is used.')
param amlWorkspaceName string
@description('Durable Task Scheduler created by this template; empty when the Azure Storage provider is used.')
param schedulerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource landing 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobs
  name: landingContainer
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = if (!empty(amlWorkspaceName)) {
  name: amlWorkspaceName
}

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' existing = if (!empty(schedulerName)) {
  name: schedulerName
}

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  azureMLDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  azureMLComputeOperator: 'e503ece1-11d0-4e8e-8e2c-7a6c3bf38815'
  durableTaskDataReader: 'd6a5505f-6ebb-45a4-896e-ac8274cfc0ac'
}

// `az storage blob upload --auth-mode login` of landing/<model>/<file>.csv (docs/deploy.md, step 5): the landing container only, not the account.
resource landingUploader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(landing.id, principalId, roles.storageBlobDataContributor)
  scope: landing
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// `az ml online-endpoint create`, `az ml job/model/online-endpoint list|show` and Azure ML studio's jobs, models and endpoints pages (docs/deploy.md, steps 4 and 5).
resource amlScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlWorkspaceName)) {
  name: guid(workspace.id, principalId, roles.azureMLDataScientist)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLDataScientist)
  }
}

// `az ml compute create -n cpu-cluster` (docs/deploy.md, step 4): AzureML Data Scientist may not create compute.
resource amlComputeOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(amlWorkspaceName)) {
  name: guid(workspace.id, principalId, roles.azureMLComputeOperator)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLComputeOperator)
  }
}

// The Durable Task Scheduler dashboard lists orchestrations and their history as the signed-in user (read only: operators steer runs through the app's API).
resource schedulerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(schedulerName)) {
  name: guid(scheduler.id, principalId, roles.durableTaskDataReader)
  scope: scheduler
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.durableTaskDataReader)
  }
}
