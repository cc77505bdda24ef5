// An Azure ML workspace with its Key Vault and Container Registry (skipped when an existing
// workspace is used: parameters existingAmlWorkspaceName / existingAmlResourceGroup).
param token string
param location string
param tags object
param appInsightsId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:the workspace needs the vault reachable without a VNet in this template; access is RBAC only
  // checkov:skip=CKV_AZURE_189:as above: no private endpoints in this template
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
    softDeleteRetentionInDays: 7
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_166:quarantine needs the Premium SKU; Basic holds only Azure ML's environment images
  // checkov:skip=CKV_AZURE_139:private networking needs the Premium SKU and a VNet
  // checkov:skip=CKV_AZURE_163:vulnerability scanning is Defender for Containers, enabled per subscription
  name: 'cr${token}'
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: { adminUserEnabled: false }
}

resource amlStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Azure ML workspace storage without a VNet in this template
  // checkov:skip=CKV_AZURE_206:LRS for workspace artifacts that can be recreated
  // checkov:skip=CKV_AZURE_43:the name is 'stml' plus a 13-character token: lower-case letters and digits, 17 characters
  name: 'stml${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  // checkov:skip=CKV_AZURE_243:private endpoints need a VNet, out of scope for this template
  name: 'mlw-${token}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    friendlyName: 'mlops'
    keyVault: vault.id
    containerRegistry: registry.id
    storageAccount: amlStorage.id
    applicationInsights: appInsightsId
  }
}

output name string = workspace.name
output id string = workspace.id
// The workspace's default blob datastore lives here; the model data collector writes to it.
output storageAccountName string = amlStorage.name
