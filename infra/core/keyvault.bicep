// The app's Key Vault: the secrets the app is given (read through Key Vault references, never set as plain app
// settings) and, when storageCustomerManagedKey is on, the key that encrypts the app's storage account.
// Everything else the app calls uses its managed identity and needs no secret.
param token string
param location string
param tags object
@description('Principal id of the Function App\'s user-assigned identity.')
param appPrincipalId string
@description('Create a key and an identity for customer-managed encryption of the app\'s storage account.')
param customerManagedKey bool
@secure()
@description('The alert webhook\'s key (MLOPS_ALERT_KEY); empty: no secret, alerts authenticate by app role only.')
param alertKey string
@secure()
@description('The incoming webhook that notices go to (MLOPS_NOTIFY_WEBHOOK_URL); it carries a token. Empty: none.')
param notifyWebhookUrl string

var secretNames = {
  alertKey: 'mlops-alert-key'
  notifyWebhookUrl: 'mlops-notify-webhook-url'
}
var encryptionKeyName = 'storage-encryption'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:the Function App and the storage account reach the vault without a VNet in this template (as every other resource here); access is RBAC only
  // checkov:skip=CKV_AZURE_189:as above: no private endpoints in this template
  name: 'kv-mlops-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true // Azure RBAC, no access policies
    enableSoftDelete: true
    enablePurgeProtection: true // also required for a customer-managed storage key
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

// A secret exists only when its value was given: App Service resolves a reference to a missing secret to the
// reference text itself, so the app setting stays empty instead (see infra/app/function.bicep).
resource alertKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(alertKey)) {
  // checkov:skip=CKV_AZURE_41:the operator rotates the key together with the function key it must equal; an expiry would silently turn alerts away
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov 3.3 does not read the properties of a conditional (if) resource
  parent: vault
  name: secretNames.alertKey
  properties: { value: alertKey, contentType: 'text/plain' }
}

resource notifyWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(notifyWebhookUrl)) {
  // checkov:skip=CKV_AZURE_41:the webhook's owner (Slack, Teams) decides when its token changes; an expiry would silently stop the notices
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov 3.3 does not read the properties of a conditional (if) resource
  parent: vault
  name: secretNames.notifyWebhookUrl
  properties: { value: notifyWebhookUrl, contentType: 'text/uri-list' }
}

// Customer-managed key of the app's storage account. A new account can only be created with a customer-managed
// key through a user-assigned identity (https://learn.microsoft.com/azure/storage/common/customer-managed-keys-configure-new-account).
resource encryptionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (customerManagedKey) {
  name: 'id-st-${token}'
  location: location
  tags: tags
}

resource encryptionKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = if (customerManagedKey) {
  // checkov:skip=CKV_AZURE_112:an HSM-backed key needs the Premium vault SKU; a software key is the documented minimum for storage encryption
  // checkov:skip=CKV_AZURE_40:expiry is the rotation policy's (two years, rotated yearly); the storage account follows the newest version by itself
  parent: vault
  name: encryptionKeyName
  properties: {
    kty: 'RSA'
    keySize: 3072
    keyOps: [ 'wrapKey', 'unwrapKey' ]
    rotationPolicy: {
      attributes: { expiryTime: 'P2Y' }
      lifetimeActions: [
        { trigger: { timeAfterCreate: 'P1Y' }, action: { type: 'rotate' } }
        { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'notify' } }
      ]
    }
  }
}

var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCryptoServiceEncryptionUser: 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
}

// App Service resolves the Key Vault references of MLOPS_ALERT_KEY and MLOPS_NOTIFY_WEBHOOK_URL as the app's identity (keyVaultReferenceIdentity).
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// Azure Storage wraps and unwraps the account's encryption key as this identity (scoped to the vault, as the storage docs ask).
resource encryptionKeyUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (customerManagedKey) {
  name: guid(vault.id, 'id-st-${token}', roles.keyVaultCryptoServiceEncryptionUser)
  scope: vault
  properties: {
    principalId: encryptionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoServiceEncryptionUser)
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless secret URIs: App Service picks up a new secret version within a day, no redeploy needed.
output alertKeyUri string = empty(alertKey) ? '' : '${vault.properties.vaultUri}secrets/${secretNames.alertKey}/'
output notifyWebhookUri string = empty(notifyWebhookUrl) ? '' : '${vault.properties.vaultUri}secrets/${secretNames.notifyWebhookUrl}/'
output encryptionKeyName string = customerManagedKey ? encryptionKeyName : ''
output encryptionIdentityId string = customerManagedKey ? encryptionIdentity.id : ''
