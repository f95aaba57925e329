from llem_docker.cli.app import main

main()
