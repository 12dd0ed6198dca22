from tests.conftest import FakeUpstream


async def test_form_against_fake_openai(bridge, fake_upstream: FakeUpstream) -> None:
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "OPENAI_API_KEY": "sk-test-123456789"})
    resp = await client.post("/", data={"Message": '[{"role":"user","content":"hi"}]'})
    assert resp.status == 200
    assert await resp.json() == {"Text": "Hello, world!"}
    assert fake_upstream.last.path == "/v1/chat/completions"
