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
@description('Versionless Key Vault secret URI of MLOPS_ALERT_KEY; empty: no alert key (alerts by app role only).')
param alertKeyUri string = ''
@description('Versionless Key Vault secret URI of MLOPS_NOTIFY_WEBHOOK_URL; empty: no webhook notices.')
param notifyWebhookUri string = ''
@description('Endpoint of the Durable Task Scheduler; empty: Durable Functions keeps the Azure Storage provider of host.json.')
param durableTaskSchedulerEndpoint string = ''
@description('Task hub in that scheduler.')
param durableTaskHubName string = ''
@description('Endpoint of the Azure OpenAI resource whose deployment judges chat models\' answers; empty: no judge.')
param judgeEndpoint string = ''
@description('The judge deployment on it.')
param judgeDeployment string = ''
@description('The Azure OpenAI API version the judge is called with.')
param judgeApiVersion string = '2024-10-21'

// App settings named AzureFunctionsJobHost__<path> override host.json in Azure
// (https://learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values), so the
// backend is switched here and host.json stays as the local host (devhost) reads it. Provider type and
// connection string as the Durable Task Scheduler docs give them
// (https://learn.microsoft.com/azure/azure-functions/durable/durable-task-scheduler/durable-task-scheduler-identity).
var durableTaskSchedulerSettings = empty(durableTaskSchedulerEndpoint) ? {} : {
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${durableTaskSchedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  AzureFunctionsJobHost__extensions__durableTask__hubName: durableTaskHubName
}

// Secrets are Key Vault references, resolved by App Service as the app's identity before the app starts
// (https://learn.microsoft.com/azure/app-service/app-service-key-vault-references); a secret that was not
// given leaves its setting empty rather than set to a reference that cannot resolve.
var alertKeyReference = empty(alertKeyUri) ? '' : '@Microsoft.KeyVault(SecretUri=${alertKeyUri})'
var notifyWebhookReference = empty(notifyWebhookUri) ? '' : '@Microsoft.KeyVault(SecretUri=${notifyWebhookUri})'

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
    keyVaultReferenceIdentity: identityId // Key Vault references resolve as the user-assigned identity
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
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
    properties: union({
      // Host storage through the managed identity (no connection string, no shared key)
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AZURE_CLIENT_ID: identityClientId
      // Not a secret (it identifies the component; the host's ingestion authenticates with Entra ID below), so a
      // plain setting: https://learn.microsoft.com/azure/azure-monitor/app/connection-strings
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      MLOPS_PLATFORM: 'azureml'
      MLOPS_LANDING_CONTAINER: 'landing'
      MLOPS_POLICY_DIR: 'policies'
      MLOPS_EVENTGRID_TOPIC_ENDPOINT: topicEndpoint
      MLOPS_OPERATOR_ROLE: 'mlops.operator'
      // Azure Monitor alerts: the action group's secure webhook signs in with this app role; a plain
      // webhook instead sends MLOPS_ALERT_KEY as ?code= (from Key Vault; empty: role only)
      MLOPS_ALERT_ROLE: 'mlops.alerts'
      MLOPS_ALERT_KEY: alertKeyReference
      // notices (docs/operator.md): an incoming webhook's URL holds a token, so it comes from Key Vault
      // (empty: events on the topic only); links use https://$WEBSITE_HOSTNAME unless MLOPS_PUBLIC_URL is set
      MLOPS_NOTIFY_WEBHOOK_URL: notifyWebhookReference
      MLOPS_PUBLIC_URL: ''
      MLOPS_DEDUP_RETENTION_HOURS: '26'
      // days a finished run's Durable history is kept before the monitor purges it (docs/operations.md)
      MLOPS_RUN_RETENTION_DAYS: '90'
      MLOPS_MONITOR_SCHEDULE: '0 */5 * * * *'
      MLFLOW_TRACKING_URI: ''
      AZUREML_SUBSCRIPTION_ID: amlSubscriptionId
      AZUREML_RESOURCE_GROUP: amlResourceGroup
      AZUREML_WORKSPACE: amlWorkspace
      AZUREML_COMPUTE: amlCompute
      AZUREML_ENVIRONMENT: amlEnvironment
      // the judge of chat models' answers (docs/llmops.md): passed to the chat evaluation job, which calls it as
      // the compute's identity; empty: the judge metrics are skipped with the reason
      MLOPS_JUDGE_ENDPOINT: judgeEndpoint
      MLOPS_JUDGE_DEPLOYMENT: judgeDeployment
      MLOPS_JUDGE_API_VERSION: judgeApiVersion
    }, durableTaskSchedulerSettings)
  }
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
