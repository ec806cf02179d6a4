"""Platform adapters that turn shop and subscription activity into eTrusted events."""
