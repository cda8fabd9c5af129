/*
 * realmctl.h — verb entry points of the operator CLI. Each takes the arguments after its verb
 * (argv[0] is the verb itself) and returns the process exit status.
 */
#ifndef REALMCTL_H
#define REALMCTL_H

int realmctl_cmd_model(int argc, char **argv);    /* model inspect|synth   (cmd_model.c) */
int realmctl_cmd_generate(int argc, char **argv); /* generate              (cmd_generate.c) */
int realmctl_cmd_module(int argc, char **argv);   /* module build          (cmd_module.c) */
int realmctl_cmd_tenant(int argc, char **argv);   /* tenant add|list|...   (cmd_tenant.c) */
int realmctl_cmd_up(int argc, char **argv);       /* up: the local stack   (cmd_up.c) */

#endif
