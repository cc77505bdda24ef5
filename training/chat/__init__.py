"""Code that chat-model jobs run: the packaged base model, the chat pyfunc, data checks and evaluation."""
