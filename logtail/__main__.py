from logtail.cli import main

main()
