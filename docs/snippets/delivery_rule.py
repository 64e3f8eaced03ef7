"""Filters, rooms and the delivery rule, with the SDK's pure protocol functions."""

from client_sdk.protocol import Channel, Scope, delivery_rooms, subscription_room

# A subscription joins one room per channel for its filter.
assert subscription_room(Channel.KPI, Scope("acme")) == "kpi:org:acme"
assert (
    subscription_room(Channel.KPI, Scope("acme", "customer_care", "support"))
    == "kpi:org:acme:dept:customer_care:queue:support"
)

# A message goes to every room whose filter fields all equal its target's.
target = Scope("acme", department_id="customer_care", queue_name="support")
print(delivery_rooms(Channel.KPI, target))
assert delivery_rooms(Channel.KPI, target) == (
    "kpi:org:acme",  # the whole organization
    "kpi:org:acme:dept:customer_care",  # the department
    "kpi:org:acme:queue:support",  # the queue, in any department
    "kpi:org:acme:dept:customer_care:queue:support",  # exactly this queue
)

# A message for the organization as a whole reaches only organization-wide
# subscriptions: a queue filter does not receive it.
assert delivery_rooms(Channel.KPI, Scope("acme")) == ("kpi:org:acme",)

# The client's face of the same rule: does a subscription's filter cover a
# message's target? (A hook and BlockingClient.messages() use this.)
assert Scope("acme", queue_name="support").covers(target)
assert not Scope("acme", queue_name="sales").covers(target)
assert not Scope("acme", queue_name="support").covers(Scope("acme"))
