"""Starting `calql` in a child process the way a user's terminal would."""


def interruptible(command: list[str]) -> list[str]:
    """`command` (python -m calql.cli ...) with Ctrl-C handled even when the tests run in a
    background job, whose children start with SIGINT ignored (a shell's `&`, POSIX): the child
    puts Python's handler back before calql starts."""
    assert command[1:3] == ["-m", "calql.cli"], command
    restore = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    return [command[0], "-c", restore + "from calql.cli import main; sys.exit(main(sys.argv[1:]))", *command[3:]]
