"""The SnapTrade client: the only code that talks to the SDK, and the exact splitting of its pages."""
