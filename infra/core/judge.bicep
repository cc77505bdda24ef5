// The judge of chat models' answers (docs/llmops.md, "AI-assisted metrics"): an existing Azure OpenAI resource,
// and the one role the identity Azure ML jobs run as needs on it. Deployed into that resource's group, and only
// when infra/main.bicep's judgeOpenAiAccount is set.
@description('Azure OpenAI resource holding the judge deployment.')
param accountName string
@description('Principal id of the managed identity the Azure ML compute cluster runs jobs as; empty: no role assignment (docs/deploy.md).')
param jobsPrincipalId string

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

var roles = {
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
}

// The chat evaluation job's evaluators (training/evaluation/judge.py) call chat completions on the judge deployment with the compute's Entra ID token: the data-plane user role, on this resource only (no key, no management rights).
resource judgeUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(jobsPrincipalId)) {
  name: guid(account.id, jobsPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    principalId: jobsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
  }
}

// The resource's own endpoint (https://<custom subdomain>.openai.azure.com/ for an Azure OpenAI resource).
output endpoint string = account.properties.endpoint
