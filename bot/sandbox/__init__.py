"""The sandbox: a built-in WeCom emulator and `simulate`, tools around the service."""
