// The Durable Task Scheduler backend (opt-in, parameter useDurableTaskScheduler): a scheduler with the app's
// task hub, and the app's identity allowed to use it. The Function App is pointed at it by app settings
// (infra/app/function.bicep); host.json is unchanged, so local runs keep their own backend.
// https://learn.microsoft.com/azure/azure-functions/durable/durable-task-scheduler/durable-task-scheduler-identity
param token string
param location string
param tags object
@description('Principal id of the Function App\'s user-assigned identity.')
param appPrincipalId string
@description('The task hub: the same name host.json gives the Azure Storage provider\'s hub.')
param taskHubName string
@allowed([ 'Dedicated', 'Consumption' ])
@description('Dedicated: 2,000 actions/s per capacity unit at a fixed monthly price; Consumption: pay per action, up to 500 actions/s.')
param sku string

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: 'dts-${token}'
  location: location
  tags: tags
  properties: {
    sku: sku == 'Dedicated' ? { name: 'Dedicated', capacity: 1 } : { name: 'Consumption' }
    // The app reaches the scheduler over its public gRPC endpoint (TLS, Entra ID only) like every other
    // service in this template; an empty list would refuse every caller.
    ipAllowlist: [ '0.0.0.0/0' ]
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

// Durable Task Data Contributor, as the docs ask of a Durable Functions app: the extension dispatches and completes work items and the client starts, queries and terminates instances.
resource appContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(taskHub.id, appPrincipalId, '0ad04412-c4d5-4796-b79c-f76d14c8d402')
  scope: taskHub
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0ad04412-c4d5-4796-b79c-f76d14c8d402')
  }
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
