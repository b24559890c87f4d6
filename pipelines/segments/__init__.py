"""Patient segments (static, dynamic, event-triggered) and the trigger events they react to."""
