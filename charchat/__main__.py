from charchat.cli import main

main()
