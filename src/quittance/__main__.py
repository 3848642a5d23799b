from quittance.cli import main

main()
