"""The official OpenAI and Anthropic Python SDKs call Tollgate's AI proxy as their users
would: a Tollgate access token as the API key, the proxy as the base URL. Prints what
they saw as JSON; the Rust test judges it.

Environment: BASE (Tollgate's URL), TOKEN.
"""
import json
import os

import anthropic
import openai

base, token = os.environ["BASE"], os.environ["TOKEN"]
out = {}
messages = [{"role": "user", "content": "Hello"}]

oa = openai.OpenAI(base_url=f"{base}/ai/openai/v1", api_key=token, max_retries=0)

# A plain stream: client code that reads choices[0] of every chunk, as the SDK's own
# examples do, must not meet a chunk without choices.
stream = oa.chat.completions.create(model="gpt-test", messages=messages, stream=True, max_tokens=5)
out["plain_stream"] = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

# Asked for, the usage chunk arrives, last.
stream = oa.chat.completions.create(
    model="gpt-test", messages=messages, stream=True, max_tokens=4,
    stream_options={"include_usage": True},
)
chunks = list(stream)
out["usage_chunk"] = {"choices": len(chunks[-1].choices), "completion_tokens": chunks[-1].usage.completion_tokens}


def refusal(e):
    return {"class": type(e).__name__, "status": e.status_code, "message": str(e),
            "body": e.body, "code": getattr(e, "code", None), "type": getattr(e, "type", None)}


try:
    oa.chat.completions.create(model="gpt-test", messages=messages, max_tokens=50000)
    out["openai_refusal"] = None
except openai.APIStatusError as e:
    out["openai_refusal"] = refusal(e)

an = anthropic.Anthropic(base_url=f"{base}/ai/anthropic", api_key=token, max_retries=0)
msg = an.messages.create(model="claude-test", max_tokens=5, messages=messages)
out["anthropic_message"] = msg.type
try:
    # (Under the SDK's own limit for a call without streaming; over the daily quota.)
    an.messages.create(model="claude-test", max_tokens=21000, messages=messages)
    out["anthropic_refusal"] = None
except anthropic.APIStatusError as e:
    out["anthropic_refusal"] = refusal(e)

print(json.dumps(out))
