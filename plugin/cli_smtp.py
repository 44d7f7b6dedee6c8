from plugin.pending import PendingCommand

COMMAND = PendingCommand("smtp-test")
