"""Fixture app: orchestrations that make durable HTTP calls (context.call_http), for devhost's tests."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def call(context: df.DurableOrchestrationContext):
    """One call_http described by the input: method, url, and optional content, headers, token_resource."""
    spec = context.get_input()
    token = df.ManagedIdentityTokenSource(spec["token_resource"]) if spec.get("token_resource") else None
    response = yield context.call_http(spec["method"], spec["url"], content=spec.get("content"),
                                       headers=spec.get("headers"), token_source=token)
    return response


@app.orchestration_trigger(context_name="context")
def call_then_activity(context: df.DurableOrchestrationContext):
    """call_http takes a sequence number like an activity: the activity after it still completes."""
    response = yield context.call_http("GET", context.get_input())
    greeting = yield context.call_activity("shout", response["content"])
    return {"status": response["statusCode"], "greeting": greeting}


@app.activity_trigger(input_name="text")
def shout(text: str) -> str:
    return text.upper()
