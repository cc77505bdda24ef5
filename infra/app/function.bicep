// The Function App on the Flex Consumption plan, Python 3.11, running as the user-assigned identity.
// App settings: every setting mlops/settings.py reads in Azure (tests/unit/azure/test_infra.py checks it).
param name string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainer string
param appInsightsConnectionString string
param topicEndpoint string
param amlSubscriptionId string
param amlResourceGroup string
param amlWorkspace string
param amlCompute string
param amlEnvironment string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Flex Consumption plans have no zone-redundancy setting
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:the operator API and Event Grid deliveries reach the app publicly; every route needs a key and actions need an Entra role
  // checkov:skip=CKV_AZURE_17:callers authenticate with function keys and App Service authentication, not client certificates
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; always-ready instances are a cost choice left to the operator
  // checkov:skip=CKV_AZURE_213:Flex Consumption has no App Service health-check setting
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${environment().suffixes.storage}/${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
  }

  resource settings 'config' = {
  // checkov:skip=CKV_AZURE_66:app settings resource: request tracing is an App Service (web) setting, telemetry goes to Application Insights
  // checkov:skip=CKV_AZURE_63:app settings resource: HTTP logs go to Application Insights
  // checkov:skip=CKV_AZURE_222:app settings resource, not a site: see the site's suppression
  // checkov:skip=CKV_AZURE_80:Python app, no .NET Framework
  // checkov:skip=CKV_AZURE_13:App Service authentication is configured after deployment with the tenant's app registration (docs/deploy.md)
  // checkov:skip=CKV_AZURE_88:Flex Consumption uses blob deployment storage, not Azure Files
  // checkov:skip=CKV_AZURE_65:detailed error pages are a web-app setting; errors are in Application Insights
    name: 'appsettings'
    properties: {
      // Host storage through the managed identity (no connection string, no shared key)
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AZURE_CLIENT_ID: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      MLOPS_PLATFORM: 'azureml'
      MLOPS_LANDING_CONTAINER: 'landing'
      MLOPS_POLICY_DIR: 'policies'
      MLOPS_EVENTGRID_TOPIC_ENDPOINT: topicEndpoint
      MLOPS_OPERATOR_ROLE: 'mlops.operator'
      // Azure Monitor alerts: the action group's secure webhook signs in with this app role; a plain
      // webhook instead sends MLOPS_ALERT_KEY as ?code= (set it to a Key Vault reference; empty: role only)
      MLOPS_ALERT_ROLE: 'mlops.alerts'
      MLOPS_ALERT_KEY: ''
      MLOPS_DEDUP_RETENTION_HOURS: '26'
      // notices (docs/operator.md): an incoming webhook's URL holds a token, so set it to a Key Vault
      // reference (empty: events on the topic only); links use https://$WEBSITE_HOSTNAME unless set
      MLOPS_NOTIFY_WEBHOOK_URL: ''
      MLOPS_PUBLIC_URL: ''
      MLOPS_MONITOR_SCHEDULE: '0 */5 * * * *'
      MLFLOW_TRACKING_URI: ''
      AZUREML_SUBSCRIPTION_ID: amlSubscriptionId
      AZUREML_RESOURCE_GROUP: amlResourceGroup
      AZUREML_WORKSPACE: amlWorkspace
      AZUREML_COMPUTE: amlCompute
      AZUREML_ENVIRONMENT: amlEnvironment
    }
  }
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
