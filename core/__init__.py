"""core: the shared plumbing every app stands on (database helpers, the signed-in actor, throttles, the resilient
cache, pagination, filters, error pages, the schema hook, default schedules). It imports no project app."""
