from django.contrib import admin

from crm.models import Customer, Invoice, Ticket


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "company")
    search_fields = ("name", "email", "company")


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "customer", "amount", "status")
    list_filter = ("status",)
    search_fields = ("number", "customer__name")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("subject", "customer", "status")
    list_filter = ("status",)
    search_fields = ("subject", "notes")
