from plugin.pending import PendingCommand

COMMAND = PendingCommand("sandbox")
