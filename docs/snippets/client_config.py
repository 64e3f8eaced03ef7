"""Client configuration: one frozen value, checked when built, changed with replace()."""

from client_sdk import ClientConfig

dashboard = ClientConfig(
    url="https://live.example.com",
    user_id="wallboard-3",
    organization_id="acme",
    reconnection_attempts=5,  # attempt 1 at once, then after 1, 2, 4 and 8 s
)

# A bot never gives up, spreads its reconnects, and waits at most a minute between them.
bot = dashboard.replace(
    user_id="alert-bot", reconnection_attempts=None, jitter=0.5, reconnection_delay_max=60
)
assert bot.organization_id == "acme"
assert dashboard.reconnection_attempts == 5  # the original is unchanged

try:
    ClientConfig(user_id="me")  # credentials come in pairs
except ValueError as error:
    print(error)  # user_id and organization_id: give both or neither
