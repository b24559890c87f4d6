"""Service-center conversations from bronze `feedback_records` to silver `conversation_turn`."""
