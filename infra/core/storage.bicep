// Storage for the Functions host (AzureWebJobsStorage, Durable task hub, deployment package),
// the landing container for training data and the app's control store. No shared keys:
// everything uses Microsoft Entra ID (the app's managed identity).
param name string
param location string
param tags object
@description('Key Vault URI of the customer-managed key; empty: Microsoft-managed keys (the default).')
param encryptionKeyVaultUri string = ''
@description('Name of the customer-managed key in that vault.')
param encryptionKeyName string = ''
@description('User-assigned identity the account unwraps the key as (Key Vault Crypto Service Encryption User).')
param encryptionIdentityId string = ''

var customerManagedKey = !empty(encryptionKeyName)

var landing = 'landing'
var deployment = 'app-package'
var deadLetters = 'event-dead-letters' // Event Grid deliveries that ran out of retries (see subscriptions.bicep)

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:the Flex Consumption app reaches it without VNet integration in this template; access is Entra ID only (no shared keys)
  // checkov:skip=CKV_AZURE_59:public endpoint needed by the Functions host and Event Grid without a VNet; shared keys are disabled
  // checkov:skip=CKV_AZURE_206:zone-redundant (ZRS) is the chosen replication for host and landing data
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  identity: customerManagedKey ? { type: 'UserAssigned', userAssignedIdentities: { '${encryptionIdentityId}': {} } } : null
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
    // Customer-managed key (storageCustomerManagedKey): no key version, so the account follows the key's
    // rotation. Queues and tables (Durable Functions' history and work items) are encrypted with the account's
    // key only when created so: their key type cannot change after the account exists
    // (https://learn.microsoft.com/azure/storage/common/account-encryption-key-create).
    encryption: customerManagedKey ? {
      keySource: 'Microsoft.Keyvault'
      identity: { userAssignedIdentity: encryptionIdentityId }
      keyvaultproperties: { keyvaulturi: encryptionKeyVaultUri, keyname: encryptionKeyName }
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    } : null
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource landingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: landing
  properties: { publicAccess: 'None' }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deployment
  properties: { publicAccess: 'None' }
}

// the split of each landed file, per training job (AzureMLPlatform.submit_training uploads it; the job reads it)
resource jobsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'mlops-jobs'
  properties: { publicAccess: 'None' }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deadLetters
  properties: { publicAccess: 'None' }
}

output name string = account.name
output id string = account.id
output landingContainer string = landing
output deploymentContainer string = deployment
output deadLetterContainer string = deadLetters
output jobsContainer string = jobsContainer.name
