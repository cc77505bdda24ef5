"""The local scoring gateway (an Azure ML managed online endpoint on one machine) and its client."""
